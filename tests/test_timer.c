/*
 * test_timer.c: timers.  10 000 fibers sleeping for shuffled durations,
 * weft_sleep in plain tasks and off the workers, one-shot timer callbacks
 * (WEFT_OP_SLEEP with weft_op_submit) from outside and inside, a periodic
 * timer that resubmits its op from its callback.  Both backends.
 */
#define _GNU_SOURCE
#include "test_io_util.h"

/* ------------------------------------------------------------------ */
/* 10 000 sleeping fibers                                               */

struct sleeper {
	uint64_t dur_ns;
	uint64_t start_ns, end_ns;
	int rc;
	atomic_int wakes;
	long order;
	struct sleep_ctx *c;
};

struct sleep_ctx {
	atomic_long next_order;
	struct t_latch latch;
};

static void sleeper_fiber(void *p)
{
	struct sleeper *s = p;
	s->start_ns = io_now_ns();
	s->rc = weft_sleep(s->dur_ns);
	s->end_ns = io_now_ns();
	atomic_fetch_add(&s->wakes, 1);
	s->order = atomic_fetch_add(&s->c->next_order, 1);
	t_latch_done(&s->c->latch);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void many_sleepers(int backend, unsigned io_entries)
{
	size_t n = t_size(10000, 1000);
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.io_entries = io_entries;
	cfg.fiber_stack_size = 64u << 10;
	weft_runtime_t *rt = io_rt_cfg(backend, &cfg);

	struct sleep_ctx c;
	memset(&c, 0, sizeof c);
	t_latch_init(&c.latch, (long)n);
	struct sleeper *s = calloc(n, sizeof *s);
	cr_assert_not_null(s);
	/* Durations 0..~150 ms in 15 us steps, shuffled. */
	uint64_t step = 150000000ULL / n;
	for (size_t i = 0; i < n; i++)
		s[i].dur_ns = i * step;
	uint64_t seed = 0x5eed1234ULL;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(t_rand(&seed) % (i + 1));
		uint64_t t = s[i].dur_ns;
		s[i].dur_ns = s[j].dur_ns;
		s[j].dur_ns = t;
	}
	for (size_t i = 0; i < n; i++) {
		s[i].c = &c;
		s[i].rc = 1;
		IO_GO(rt, sleeper_fiber, &s[i]);
	}
	t_latch_wait(&c.latch);

	/* Every fiber woke exactly once, with 0, never early. */
	uint64_t *late = calloc(n, sizeof *late);
	cr_assert_not_null(late);
	_Atomic uint8_t *seen = calloc(n, 1);
	cr_assert_not_null(seen);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(atomic_load(&s[i].wakes), 1, "fiber %zu woke %d times", i, atomic_load(&s[i].wakes));
		cr_assert_eq(s[i].rc, 0, "fiber %zu: weft_sleep = %d", i, s[i].rc);
		uint64_t took = s[i].end_ns - s[i].start_ns;
		cr_assert_geq(took, s[i].dur_ns, "fiber %zu woke early: slept %llu ns of %llu", i,
		              (unsigned long long)took, (unsigned long long)s[i].dur_ns);
		late[i] = took - s[i].dur_ns;
		cr_assert(s[i].order >= 0 && (size_t)s[i].order < n);
		cr_assert_eq(seen[s[i].order], 0, "wake order %ld given twice", s[i].order);
		seen[s[i].order] = 1;
	}
	/* Lateness is allowed (loaded machine, sanitizers), but bounded: a
	 * lost timer would show up as the latch never opening (timeout); a
	 * timer served by the wrong clock or very late as this. */
	qsort(late, n, sizeof *late, cmp_u64);
	double p50 = (double)late[n / 2] / 1e6, p99 = (double)late[n * 99 / 100] / 1e6,
	       mx = (double)late[n - 1] / 1e6;
	cr_log_info("%s: %zu sleepers, lateness p50 %.3f ms p99 %.3f ms max %.3f ms", io_name(backend), n,
	            p50, p99, mx);
	cr_assert_lt(mx, T_SANITIZER_BUILD ? 20000.0 : 5000.0, "a sleeper woke %.1f ms late", mx);

	/* Wake order against deadlines (logged: lateness bounds it). */
	size_t *by_order = malloc(n * sizeof *by_order);
	cr_assert_not_null(by_order);
	for (size_t i = 0; i < n; i++)
		by_order[s[i].order] = i;
	size_t inversions = 0;
	for (size_t k = 0; k + 1 < n; k++) {
		struct sleeper *a = &s[by_order[k]], *b = &s[by_order[k + 1]];
		if (a->start_ns + a->dur_ns > b->start_ns + b->dur_ns + 1000000)
			inversions++;
	}
	cr_log_info("%s: %zu of %zu consecutive wakes out of deadline order by > 1 ms", io_name(backend),
	            inversions, n - 1);
	free(by_order);

	weft_stats_t st;
	cr_assert_geq(weft_stats_get(rt, &st, NULL, 0), 0);
#ifndef WEFT_NO_STATS
	cr_assert_eq(st.fibers, n, "stats: %llu fibers started, want %zu", (unsigned long long)st.fibers, n);
	cr_assert_geq(st.io_ops, n, "stats: %llu io_ops for %zu sleeps", (unsigned long long)st.io_ops, n);
#endif

	t_destroy(rt);
	T_ASSERT_CLEAN();
	t_latch_fini(&c.latch);
	free(seen);
	free(late);
	free(s);
}

IO_TEST(timer, ten_thousand_sleeping_fibers)
{
	many_sleepers(backend, 0);
}

/* A tiny submission queue: more timers in flight than ring entries. */
IO_TEST(timer, sleeping_fibers_small_ring)
{
	many_sleepers(backend, 8);
}

/* ------------------------------------------------------------------ */
/* weft_sleep in a plain task (the worker helps) and off the workers     */

struct task_sleep {
	int rc;
	uint64_t took;
	int worker;
};

static void task_sleep_fn(void *p)
{
	struct task_sleep *t = p;
	uint64_t t0 = io_now_ns();
	t->rc = weft_sleep(20000000);
	t->took = io_now_ns() - t0;
	t->worker = weft_worker_index();
}

struct helped {
	atomic_int ran;
};

static void helped_fiber(void *p)
{
	struct helped *h = p;
	atomic_fetch_add(&h->ran, 1);
}

struct task_sleep2 {
	struct task_sleep ts;
	struct helped h;
};

static void task_sleep_helps(void *p)
{
	struct task_sleep2 *t = p;
	/* One worker: the fiber can only run while this task waits. */
	io_go_here(helped_fiber, &t->h);
	task_sleep_fn(&t->ts);
	T_CHECK_EQ(atomic_load(&t->h.ran), 1);
}

IO_TEST(timer, sleep_in_task)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct task_sleep2 t;
	memset(&t, 0, sizeof t);
	t.ts.rc = 1;
	t_run(rt, task_sleep_helps, &t);
	cr_assert_eq(t.ts.rc, 0);
	cr_assert_geq(t.ts.took, 20000000ULL, "slept %llu ns of 20 ms", (unsigned long long)t.ts.took);
	cr_assert_eq(t.ts.worker, 0);
	cr_assert_eq(atomic_load(&t.h.ran), 1, "the worker ran other work while the task slept");
	T_ASSERT_CLEAN();
	t_destroy(rt);
}

IO_TEST(timer, sleep_off_workers)
{
	weft_runtime_t *rt = io_rt(backend, 1); /* exists, but this thread is not its */
	for (int i = 0; i < 3; i++) {
		errno = EDOM;
		uint64_t t0 = io_now_ns();
		int rc = weft_sleep(15000000);
		uint64_t took = io_now_ns() - t0;
		cr_assert_eq(rc, 0);
		cr_assert_eq(errno, EDOM, "weft_sleep changed errno");
		cr_assert_geq(took, 15000000ULL, "slept %llu ns of 15 ms", (unsigned long long)took);
		cr_assert_lt(took, 5000000000ULL);
	}
	cr_assert_eq(weft_sleep(0), 0);
	/* SLEEP through weft_op_run off the workers. */
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_SLEEP;
	op.timeout_ns = 10000000;
	uint64_t t0 = io_now_ns();
	cr_assert_eq(weft_op_run(&op), 0);
	cr_assert_eq(op.result, 0);
	cr_assert_geq(io_now_ns() - t0, 10000000ULL);
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* One-shot timer callbacks                                             */

struct cb_timer {
	weft_op_t op;
	weft_runtime_t *rt;
	uint64_t submitted_ns;
	uint64_t fired_ns;
	int worker;
	weft_runtime_t *cur;
	atomic_int calls;
	ssize_t result;
	struct t_latch *latch;
	atomic_int *submitting; /* nonzero while the submitter is inside weft_op_submit */
	int cancel_in_cb;
};

static void cb_timer_fn(weft_op_t *op)
{
	struct cb_timer *t = op->data;
	t->fired_ns = io_now_ns();
	T_CHECK(op == &t->op);
	t->result = op->result;
	t->worker = weft_worker_index();
	t->cur = weft_runtime_current();
	if (t->submitting)
		T_CHECK_EQ(atomic_load(t->submitting), 0);
	/* The op is no longer pending inside its own callback. */
	t->cancel_in_cb = weft_op_cancel(op);
	atomic_fetch_add(&t->calls, 1);
	t_latch_done(t->latch);
}

static void cb_timer_init(struct cb_timer *t, weft_runtime_t *rt, uint64_t ns, struct t_latch *l)
{
	memset(&t->op, 0, sizeof t->op);
	t->op.opcode = WEFT_OP_SLEEP;
	t->op.timeout_ns = ns;
	t->op.cb = cb_timer_fn;
	t->op.data = t;
	t->op.result = 12345;
	t->rt = rt;
	t->latch = l;
	t->worker = -2;
}

static void cb_timer_check(struct cb_timer *t, weft_runtime_t *rt, unsigned workers)
{
	cr_assert_eq(atomic_load(&t->calls), 1, "callback ran %d times", atomic_load(&t->calls));
	cr_assert_eq(t->result, 0, "timer result %zd", t->result);
	cr_assert_geq(t->fired_ns - t->submitted_ns, t->op.timeout_ns, "timer fired early");
	cr_assert(t->worker >= 0 && (unsigned)t->worker < workers, "callback on worker %d", t->worker);
	cr_assert_eq(t->cur, rt);
	cr_assert_eq(t->cancel_in_cb, -EALREADY, "weft_op_cancel inside the callback = %d", t->cancel_in_cb);
}

IO_TEST(timer, callback_from_outside)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	enum { N = 64 };
	struct cb_timer *t = calloc(N, sizeof *t);
	cr_assert_not_null(t);
	struct t_latch l;
	t_latch_init(&l, N);
	for (int i = 0; i < N; i++) {
		cb_timer_init(&t[i], rt, (uint64_t)((i * 37) % N) * 300000ULL, &l);
		t[i].submitted_ns = io_now_ns();
		int rc = weft_op_submit(rt, &t[i].op);
		cr_assert_eq(rc, 0, "weft_op_submit = %d", rc);
	}
	t_latch_wait(&l);
	for (int i = 0; i < N; i++)
		cb_timer_check(&t[i], rt, 2);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	t_latch_fini(&l);
	free(t);
}

/* From inside a task and a fiber, one worker: the callback never runs
 * inside weft_op_submit (even with a zero duration). */
struct cb_inside {
	struct cb_timer t[4];
	atomic_int submitting;
	weft_runtime_t *rt;
};

static void cb_inside_submit(struct cb_inside *c, int first)
{
	for (int i = first; i < first + 2; i++) {
		c->t[i].submitted_ns = io_now_ns();
		atomic_store(&c->submitting, 1);
		int rc = weft_op_submit(c->rt, &c->t[i].op);
		atomic_store(&c->submitting, 0);
		T_CHECK_EQ(rc, 0);
	}
}

static void cb_inside_task(void *p) { cb_inside_submit(p, 0); }
static void cb_inside_fiber(void *p) { cb_inside_submit(p, 2); }

IO_TEST(timer, callback_from_inside)
{
	struct cb_inside c;
	memset(&c, 0, sizeof c);
	c.rt = io_rt(backend, 1);
	struct t_latch l;
	t_latch_init(&l, 4);
	for (int i = 0; i < 4; i++) {
		cb_timer_init(&c.t[i], c.rt, (i % 2) ? 3000000 : 0, &l);
		c.t[i].submitting = &c.submitting;
	}
	t_run(c.rt, cb_inside_task, &c);
	IO_GO(c.rt, cb_inside_fiber, &c);
	t_latch_wait(&l);
	for (int i = 0; i < 4; i++)
		cb_timer_check(&c.t[i], c.rt, 1);
	T_ASSERT_CLEAN();
	t_destroy(c.rt);
	t_latch_fini(&l);
}

/* A periodic timer: the callback resubmits its own op. */
struct periodic {
	weft_op_t op;
	weft_runtime_t *rt;
	int fired;
	int target;
	uint64_t t0;
	struct t_latch latch;
};

static void periodic_cb(weft_op_t *op)
{
	struct periodic *p = op->data;
	T_CHECK_EQ(op->result, 0);
	if (++p->fired < p->target) {
		int rc = weft_op_submit(p->rt, op);
		T_CHECK_EQ(rc, 0);
		if (rc == 0)
			return;
	}
	t_latch_done(&p->latch);
}

IO_TEST(timer, periodic_resubmit)
{
	struct periodic p;
	memset(&p, 0, sizeof p);
	p.rt = io_rt(backend, 2);
	p.target = 10;
	t_latch_init(&p.latch, 1);
	p.op.opcode = WEFT_OP_SLEEP;
	p.op.timeout_ns = 2000000;
	p.op.cb = periodic_cb;
	p.op.data = &p;
	p.t0 = io_now_ns();
	cr_assert_eq(weft_op_submit(p.rt, &p.op), 0);
	t_latch_wait(&p.latch);
	uint64_t took = io_now_ns() - p.t0;
	cr_assert_eq(p.fired, 10);
	cr_assert_geq(took, 10 * 2000000ULL, "10 periods of 2 ms took %llu ns", (unsigned long long)took);
	T_ASSERT_CLEAN();
	t_destroy(p.rt);
	t_latch_fini(&p.latch);
}

/* Submitting from several outside threads at once. */
struct multi_sub {
	weft_runtime_t *rt;
	struct cb_timer *t;
	int per;
	int base;
	pthread_t th;
};

static void *multi_sub_main(void *p)
{
	struct multi_sub *m = p;
	for (int i = m->base; i < m->base + m->per; i++) {
		m->t[i].submitted_ns = io_now_ns();
		T_CHECK_EQ(weft_op_submit(m->rt, &m->t[i].op), 0);
	}
	return NULL;
}

IO_TEST(timer, callbacks_from_threads)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int per = (int)t_size(500, 100), nth = 4, n = per * nth;
	struct cb_timer *t = calloc((size_t)n, sizeof *t);
	cr_assert_not_null(t);
	struct t_latch l;
	t_latch_init(&l, n);
	uint64_t seed = 99;
	for (int i = 0; i < n; i++)
		cb_timer_init(&t[i], rt, t_rand(&seed) % 5000000ULL, &l);
	struct multi_sub m[4];
	for (int k = 0; k < nth; k++) {
		m[k] = (struct multi_sub){.rt = rt, .t = t, .per = per, .base = k * per};
		cr_assert_eq(pthread_create(&m[k].th, NULL, multi_sub_main, &m[k]), 0);
	}
	for (int k = 0; k < nth; k++)
		pthread_join(m[k].th, NULL);
	t_latch_wait(&l);
	for (int i = 0; i < n; i++)
		cb_timer_check(&t[i], rt, 2);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	t_latch_fini(&l);
	free(t);
}

/* A callback is a plain task: it may itself wait (the worker helps). */
struct cb_blocks {
	weft_op_t op;
	int sv[2];
	int sleep_rc;
	ssize_t recv_rc;
	struct t_latch latch;
};

static void cb_blocks_fn(weft_op_t *op)
{
	struct cb_blocks *c = op->data;
	T_CHECK_EQ(op->result, 0);
	c->sleep_rc = weft_sleep(2000000);
	char b[4];
	weft_op_t r;
	memset(&r, 0, sizeof r);
	r.opcode = WEFT_OP_RECV;
	r.fd = c->sv[0];
	r.buf = b;
	r.len = sizeof b;
	r.timeout_ns = 2000000;
	c->recv_rc = weft_op_run(&r);
	t_latch_done(&c->latch);
}

IO_TEST(timer, callback_may_wait)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct cb_blocks c;
	memset(&c, 0, sizeof c);
	io_socketpair(c.sv);
	t_latch_init(&c.latch, 1);
	c.sleep_rc = 1;
	c.recv_rc = 1;
	c.op.opcode = WEFT_OP_SLEEP;
	c.op.timeout_ns = 1000000;
	c.op.cb = cb_blocks_fn;
	c.op.data = &c;
	cr_assert_eq(weft_op_submit(rt, &c.op), 0);
	t_latch_wait(&c.latch);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.sleep_rc, 0);
	cr_assert_eq(c.recv_rc, -ETIMEDOUT, "recv with timeout in a callback = %zd", c.recv_rc);
	t_destroy(rt);
	t_latch_fini(&c.latch);
	close(c.sv[0]);
	close(c.sv[1]);
}
