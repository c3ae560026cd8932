/*
 * test_submit.c: work that enters a runtime from outside it: weft_submit
 * (detached and with futures), weft_future_*, weft_run, and how
 * weft_runtime_destroy treats submitted work.
 */
#define _GNU_SOURCE
#include "test_util.h"

/* ------------------------------------------------------------------ */
/* Eight outside threads submitting at once                             */

#define SUBMITTERS 8

struct mass {
	_Atomic uint8_t *ran; /* per task */
	atomic_long count;
	size_t per_thread;
	weft_runtime_t *rt;
};

struct mass_item {
	struct mass *m;
	size_t id;
};

static void mass_task(void *p)
{
	struct mass_item *it = p;
	atomic_fetch_add_explicit(&it->m->ran[it->id], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&it->m->count, 1, memory_order_relaxed);
}

struct submitter {
	struct mass *m;
	int idx;
	pthread_t thread;
	struct mass_item *items;
};

static void *submitter_main(void *p)
{
	struct submitter *s = p;
	struct mass *m = s->m;
	size_t n = m->per_thread;
	weft_future_t **kept = calloc(n, sizeof *kept);
	size_t nkept = 0;
	if (!kept) {
		t_fail_at(__FILE__, __LINE__, "calloc");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct mass_item *it = &s->items[i];
		it->m = m;
		it->id = (size_t)s->idx * n + i;
		weft_future_t *f = NULL;
		int rc;
		switch (i % 4) {
		case 0:
		case 1: /* detached */
			rc = weft_submit(m->rt, mass_task, it, NULL);
			T_CHECK_EQ(rc, 0);
			break;
		case 2: /* future, waited for below */
			rc = weft_submit(m->rt, mass_task, it, &f);
			T_CHECK_EQ(rc, 0);
			if (rc == 0)
				kept[nkept++] = f;
			break;
		default: /* future released at once, likely before the task ran */
			rc = weft_submit(m->rt, mass_task, it, &f);
			T_CHECK_EQ(rc, 0);
			if (rc == 0)
				weft_future_free(f);
			break;
		}
	}
	for (size_t k = 0; k < nkept; k++) {
		T_CHECK_EQ(weft_future_wait(kept[k]), 0);
		T_CHECK(weft_future_done(kept[k]));
		weft_future_free(kept[k]);
	}
	/* The waited tasks (i % 4 == 2) must have run by now. */
	for (size_t i = 2; i < n; i += 4) {
		size_t id = (size_t)s->idx * n + i;
		if (atomic_load_explicit(&m->ran[id], memory_order_relaxed) != 1)
			t_fail_at(__FILE__, __LINE__, "task %zu: ran %u times after weft_future_wait", id,
			          (unsigned)atomic_load_explicit(&m->ran[id], memory_order_relaxed));
	}
	free(kept);
	return NULL;
}

Test(submit, eight_threads_100k_each_exactly_once, .timeout = 600)
{
	struct mass m;
	m.per_thread = t_size(100000, 10000);
	size_t total = m.per_thread * SUBMITTERS;
	m.ran = calloc(total, 1);
	cr_assert_not_null(m.ran);
	atomic_init(&m.count, 0);
	m.rt = t_runtime(4);

	struct submitter s[SUBMITTERS];
	for (int i = 0; i < SUBMITTERS; i++) {
		s[i].m = &m;
		s[i].idx = i;
		s[i].items = calloc(m.per_thread, sizeof *s[i].items);
		cr_assert_not_null(s[i].items);
		cr_assert_eq(pthread_create(&s[i].thread, NULL, submitter_main, &s[i]), 0);
	}
	for (int i = 0; i < SUBMITTERS; i++)
		pthread_join(s[i].thread, NULL);
	/* Detached tasks may still be queued: destroy must finish them. */
	t_destroy(m.rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&m.count), (long)total, "%ld tasks ran, %zu submitted", atomic_load(&m.count),
	             total);
	for (size_t i = 0; i < total; i++)
		cr_assert_eq(atomic_load_explicit(&m.ran[i], memory_order_relaxed), 1, "task %zu ran %u times", i,
		             (unsigned)atomic_load_explicit(&m.ran[i], memory_order_relaxed));
	for (int i = 0; i < SUBMITTERS; i++)
		free(s[i].items);
	free(m.ran);
}

/* ------------------------------------------------------------------ */
/* Destroy finishes detached work                                       */

static void count_task(void *p) { atomic_fetch_add((atomic_long *)p, 1); }

/* Signals that it runs, then holds its worker until the gate opens. */
struct blocker {
	atomic_int started;
	struct t_gate *gate;
};

static void blocker_task(void *p)
{
	struct blocker *b = p;
	atomic_store(&b->started, 1);
	t_gate_wait(b->gate);
}

Test(submit, destroy_finishes_queued_detached_tasks, .timeout = 120)
{
	/* One worker, blocked on a gate: everything submitted after it is
	 * still queued when destroy is called. */
	weft_runtime_t *rt = t_runtime(1);
	struct t_gate gate;
	struct t_opener op;
	atomic_long count = 0;
	long n = (long)t_size(100000, 10000);
	t_gate_init(&gate);
	struct blocker b = {0, &gate};
	cr_assert_eq(weft_submit(rt, blocker_task, &b, NULL), 0);
	double deadline = t_now() + 20.0;
	while (!atomic_load(&b.started) && t_now() < deadline)
		t_sleep_us(100);
	cr_assert(atomic_load(&b.started), "the blocking task never started");
	for (long i = 0; i < n; i++)
		cr_assert_eq(weft_submit(rt, count_task, &count, NULL), 0);
	cr_assert_eq(atomic_load(&count), 0, "tasks ran while the only worker was blocked");
	t_open_later(&op, &gate, 100);
	t_destroy(rt);
	t_opener_join(&op);
	cr_assert_eq(atomic_load(&count), n, "after destroy: %ld of %ld detached tasks ran", atomic_load(&count), n);
	t_gate_fini(&gate);
}

/* Detached tasks that fork and join: destroy finishes them and the tasks
 * they spawn. */
struct fib_job {
	struct t_fib f;
	atomic_ullong *sum;
};

static void fib_job(void *p)
{
	struct fib_job *j = p;
	t_fib_task(&j->f);
	atomic_fetch_add(j->sum, j->f.r);
}

Test(submit, destroy_finishes_detached_forkjoin_work, .timeout = 120)
{
	size_t n = t_size(2000, 300);
	struct fib_job *jobs = calloc(n, sizeof *jobs);
	atomic_ullong sum = 0;
	cr_assert_not_null(jobs);
	weft_runtime_t *rt = t_runtime(2);
	for (size_t i = 0; i < n; i++) {
		jobs[i].f.n = 12;
		jobs[i].sum = &sum;
		cr_assert_eq(weft_submit(rt, fib_job, &jobs[i], NULL), 0);
	}
	t_destroy(rt); /* at once: most jobs are still queued or running */
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&sum), (unsigned long long)n * t_fib_serial(12));
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(jobs[i].f.r, t_fib_serial(12));
	free(jobs);
}

/* ------------------------------------------------------------------ */
/* Futures                                                              */

struct marker {
	int value; /* plain: written by the task, read after wait/done */
	struct t_gate *gate;
};

static void mark_task(void *p)
{
	struct marker *m = p;
	if (m->gate)
		t_gate_wait(m->gate);
	m->value = 1234;
}

Test(submit, future_wait_on_finished_future, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct marker m = {0, NULL};
	weft_future_t *f = NULL;
	cr_assert_eq(weft_submit(rt, mark_task, &m, &f), 0);
	cr_assert_not_null(f);
	cr_assert_eq(weft_future_wait(f), 0);
	cr_assert_eq(m.value, 1234);
	cr_assert_neq(weft_future_done(f), 0);
	/* Wait again on the now finished future: returns at once. */
	double t0 = t_now();
	cr_assert_eq(weft_future_wait(f), 0);
	cr_assert_eq(weft_future_wait(f), 0);
	cr_assert_lt(t_now() - t0, 5.0);
	cr_assert_neq(weft_future_done(f), 0);
	weft_future_free(f);
	t_destroy(rt);
}

Test(submit, future_done_polled_without_wait, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct marker m = {0, NULL};
	weft_future_t *f = NULL;
	cr_assert_eq(weft_submit(rt, mark_task, &m, &f), 0);
	double deadline = t_now() + 20.0;
	while (!weft_future_done(f) && t_now() < deadline)
		t_sleep_us(100);
	cr_assert_neq(weft_future_done(f), 0, "the task never finished");
	/* done != 0 means the task has returned: its writes are visible. */
	cr_assert_eq(m.value, 1234);
	weft_future_free(f);
	t_destroy(rt);
}

Test(submit, future_wait_on_unfinished_future, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct t_gate gate;
	struct t_opener op;
	struct marker m = {0, &gate};
	weft_future_t *f = NULL;
	t_gate_init(&gate);
	cr_assert_eq(weft_submit(rt, mark_task, &m, &f), 0);
	t_sleep_ms(20);
	cr_assert_eq(weft_future_done(f), 0, "done before the gate was opened");
	t_open_later(&op, &gate, 150);
	double t0 = t_now();
	cr_assert_eq(weft_future_wait(f), 0);
	double waited = t_now() - t0;
	cr_assert(t_gate_is_open(&gate), "weft_future_wait returned before the task could finish");
	cr_assert_gt(waited, 0.05, "weft_future_wait returned after %.3f s, before the gate opened", waited);
	cr_assert_eq(m.value, 1234);
	cr_assert_neq(weft_future_done(f), 0);
	weft_future_free(f);
	t_opener_join(&op);
	t_destroy(rt);
	t_gate_fini(&gate);
}

Test(submit, future_free_before_completion, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct t_gate gate;
	atomic_long count = 0;
	t_gate_init(&gate);
	/* Blocked task with a future released before it finishes, then a
	 * batch of quick ones released at once. */
	struct marker m = {0, &gate};
	weft_future_t *f = NULL;
	cr_assert_eq(weft_submit(rt, mark_task, &m, &f), 0);
	weft_future_free(f);
	for (int i = 0; i < 1000; i++) {
		weft_future_t *g = NULL;
		cr_assert_eq(weft_submit(rt, count_task, &count, &g), 0);
		weft_future_free(g);
	}
	t_sleep_ms(20);
	t_gate_open(&gate);
	t_destroy(rt);
	cr_assert_eq(m.value, 1234, "the task of a released future did not run");
	cr_assert_eq(atomic_load(&count), 1000);
	t_gate_fini(&gate);
}

/* ------------------------------------------------------------------ */
/* weft_run                                                             */

static void slow_mark(void *p)
{
	t_sleep_ms(50);
	((struct marker *)p)->value = 99;
}

Test(submit, run_blocks_until_done, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct marker m = {0, NULL};
	double t0 = t_now();
	int rc = weft_run(rt, slow_mark, &m);
	cr_assert_eq(rc, 0, "weft_run = %d", rc);
	cr_assert_eq(m.value, 99, "weft_run returned before its task did");
	cr_assert_geq(t_now() - t0, 0.045);
	t_destroy(rt);
}

struct runner {
	weft_runtime_t *rt;
	pthread_t thread;
	unsigned n;
};

static void *runner_main(void *p)
{
	struct runner *r = p;
	for (int i = 0; i < 20; i++) {
		struct t_fib f = {r->n, 0};
		int rc = weft_run(r->rt, t_fib_task, &f);
		T_CHECK_EQ(rc, 0);
		T_CHECK_EQ(f.r, t_fib_serial(r->n));
	}
	return NULL;
}

Test(submit, run_from_several_threads_at_once, .timeout = 120)
{
	weft_runtime_t *rt = t_runtime(2);
	struct runner r[4];
	for (int i = 0; i < 4; i++) {
		r[i].rt = rt;
		r[i].n = 14 + (unsigned)i;
		cr_assert_eq(pthread_create(&r[i].thread, NULL, runner_main, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(r[i].thread, NULL);
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

struct direct {
	pthread_t outer, inner;
	int outer_idx, inner_idx;
	int inner_ran;
	int rc;
};

static void direct_inner(void *p)
{
	struct direct *d = p;
	d->inner = pthread_self();
	d->inner_idx = weft_worker_index();
	d->inner_ran = 1;
}

static void direct_outer(void *p)
{
	struct direct *d = p;
	d->outer = pthread_self();
	d->outer_idx = weft_worker_index();
	d->rc = weft_run(weft_runtime_current(), direct_inner, d);
	/* "On one of rt's workers it runs fn directly." */
	T_CHECK(d->inner_ran);
}

Test(submit, run_on_a_worker_runs_directly, .timeout = 30)
{
	for (unsigned w = 1; w <= 2; w++) {
		weft_runtime_t *rt = t_runtime(w);
		struct direct d;
		memset(&d, 0, sizeof d);
		t_run(rt, direct_outer, &d);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(d.rc, 0);
		cr_assert_eq(d.inner_ran, 1);
		cr_assert(pthread_equal(d.outer, d.inner), "nested weft_run did not run on the calling worker");
		cr_assert_eq(d.outer_idx, d.inner_idx);
		cr_assert_geq(d.outer_idx, 0);
	}
}

/* ------------------------------------------------------------------ */
/* Submitting and waiting from inside tasks                             */

struct inner_submit {
	atomic_long count;
	int n_detached, n_futures;
};

static void submitting_task(void *p)
{
	struct inner_submit *s = p;
	weft_runtime_t *rt = weft_runtime_current();
	T_CHECK(rt != NULL);
	for (int i = 0; i < s->n_detached; i++)
		T_CHECK_EQ(weft_submit(rt, count_task, &s->count, NULL), 0);
	weft_future_t *f[64];
	for (int i = 0; i < s->n_futures; i++)
		T_CHECK_EQ(weft_submit(rt, count_task, &s->count, &f[i]), 0);
	/* Waiting on a worker: the worker helps instead of blocking. */
	for (int i = 0; i < s->n_futures; i++) {
		T_CHECK_EQ(weft_future_wait(f[i]), 0);
		T_CHECK(weft_future_done(f[i]));
		weft_future_free(f[i]);
	}
}

Test(submit, submit_from_inside_a_task, .timeout = 60)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_runtime_t *rt = t_runtime(w);
		struct inner_submit s;
		atomic_init(&s.count, 0);
		s.n_detached = 1000;
		s.n_futures = 64;
		t_run(rt, submitting_task, &s);
		/* The futures were waited for inside the task. */
		cr_assert_geq(atomic_load(&s.count), 64, "workers=%u", w);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(atomic_load(&s.count), 1064, "workers=%u", w);
	}
}

/* The future's task is submitted by an outside thread while the only
 * worker is already inside the task that waits for it: the wait must run
 * it (help) instead of sleeping, or nothing ever will. */
struct helper_ctx {
	atomic_int started;
	_Atomic(weft_future_t *) fb;
	int rc;
	int b_seen;
	struct marker b;
};

static void waiting_task(void *p)
{
	struct helper_ctx *c = p;
	atomic_store(&c->started, 1);
	double deadline = t_now() + 20.0;
	weft_future_t *fb;
	while ((fb = atomic_load(&c->fb)) == NULL && t_now() < deadline)
		sched_yield();
	if (!fb) {
		t_fail_at(__FILE__, __LINE__, "the outside submission never arrived");
		return;
	}
	c->rc = weft_future_wait(fb);
	c->b_seen = c->b.value;
}

Test(submit, future_wait_inside_task_helps_one_worker, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(1);
	struct helper_ctx c;
	memset(&c, 0, sizeof c);
	weft_future_t *fa = NULL, *fb = NULL;
	cr_assert_eq(weft_submit(rt, waiting_task, &c, &fa), 0);
	double deadline = t_now() + 20.0;
	while (!atomic_load(&c.started) && t_now() < deadline)
		t_sleep_us(100);
	cr_assert(atomic_load(&c.started), "the waiting task never started");
	cr_assert_eq(weft_submit(rt, mark_task, &c.b, &fb), 0);
	atomic_store(&c.fb, fb);
	cr_assert_eq(weft_future_wait(fa), 0);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.rc, 0);
	cr_assert_eq(c.b_seen, 1234, "weft_future_wait inside a task returned before the task did");
	cr_assert_neq(weft_future_done(fb), 0);
	weft_future_free(fa);
	weft_future_free(fb);
	t_destroy(rt);
}

/* The same from weft_run (the waiter is the root task of a weft_run), and
 * the future's task submitted by the waiting task itself. */
static void self_submit_wait(void *p)
{
	struct marker *m = p;
	weft_future_t *f = NULL;
	int rc = weft_submit(weft_runtime_current(), mark_task, m, &f);
	T_CHECK_EQ(rc, 0);
	if (rc == 0) {
		T_CHECK_EQ(weft_future_wait(f), 0);
		T_CHECK_EQ(m->value, 1234);
		weft_future_free(f);
	}
}

Test(submit, future_wait_inside_task_on_own_submission_one_worker, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(1);
	for (int i = 0; i < 100; i++) {
		struct marker m = {0, NULL};
		t_run(rt, self_submit_wait, &m);
		cr_assert_eq(m.value, 1234);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

/* A worker waits for a future whose task is blocked on another worker
 * until an outside thread opens a gate. */
struct blocked_wait {
	weft_future_t *f;
	struct marker *m;
	int rc, seen;
};

static void wait_blocked(void *p)
{
	struct blocked_wait *b = p;
	b->rc = weft_future_wait(b->f);
	b->seen = b->m->value;
}

Test(submit, future_wait_inside_task_on_blocked_task, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	struct t_gate gate;
	struct t_opener op;
	struct marker m = {0, &gate};
	struct blocked_wait b = {NULL, &m, -1, 0};
	t_gate_init(&gate);
	cr_assert_eq(weft_submit(rt, mark_task, &m, &b.f), 0);
	t_open_later(&op, &gate, 100);
	t_run(rt, wait_blocked, &b);
	cr_assert_eq(b.rc, 0);
	cr_assert_eq(b.seen, 1234);
	t_opener_join(&op);
	weft_future_free(b.f);
	t_destroy(rt);
	t_gate_fini(&gate);
}

/* ------------------------------------------------------------------ */
/* Shutdown: new work is refused while destroy runs, old work finishes  */

struct destroyer {
	weft_runtime_t *rt;
	int rc;
	pthread_t thread;
};

static void *destroyer_main(void *p)
{
	struct destroyer *d = p;
	d->rc = weft_runtime_destroy(d->rt);
	return NULL;
}

static void nop_task(void *p) { (void)p; }

Test(submit, shutdown_refuses_new_work_and_finishes_old, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	struct t_gate gate;
	atomic_long count = 0;
	long accepted = 0;
	int rc = 0;
	t_gate_init(&gate);
	/* Keep destroy from completing while we probe. */
	cr_assert_eq(weft_submit(rt, t_gate_task, &gate, NULL), 0);
	struct destroyer d = {rt, -1, 0};
	cr_assert_eq(pthread_create(&d.thread, NULL, destroyer_main, &d), 0);
	double deadline = t_now() + 10.0;
	while (t_now() < deadline) {
		rc = weft_submit(rt, count_task, &count, NULL);
		if (rc == 0)
			accepted++;
		else
			break;
	}
	int run_rc = weft_run(rt, nop_task, NULL);
	weft_future_t *f = NULL;
	int fut_rc = weft_submit(rt, count_task, &count, &f);
	if (fut_rc == 0) {
		accepted++;
		weft_future_free(f);
	}
	t_gate_open(&gate);
	pthread_join(d.thread, NULL);
	cr_assert_eq(rc, -ESHUTDOWN, "weft_submit during destroy = %d (%s), want -ESHUTDOWN", rc, weft_strerror(rc));
	cr_assert_eq(run_rc, -ESHUTDOWN, "weft_run during destroy = %d, want -ESHUTDOWN", run_rc);
	cr_assert_eq(fut_rc, -ESHUTDOWN, "weft_submit with future during destroy = %d, want -ESHUTDOWN", fut_rc);
	cr_assert_eq(d.rc, 0, "weft_runtime_destroy = %d", d.rc);
	cr_assert_eq(atomic_load(&count), accepted, "%ld accepted submissions, %ld ran", accepted,
	             atomic_load(&count));
	t_gate_fini(&gate);
}

/* A chain of outside submissions, each waiting (inside its task) for the
 * next one, which the outside thread submits only once the waiter runs.
 * With one worker, every link must be run by the waiting worker itself,
 * nested inside the previous link's weft_future_wait.  The header promises
 * that a worker "runs other tasks while it waits"; nothing bounds how many
 * waits may be nested, and the nesting costs only a few stack frames per
 * link. */
#define CHAIN 48

struct chain_link {
	struct chain *ch;
	int i;
};

struct chain {
	struct chain_link link[CHAIN];
	_Atomic(weft_future_t *) fut[CHAIN];
	atomic_int started[CHAIN];
	atomic_int finished;
	int rc[CHAIN];
};

static void chain_task(void *p)
{
	struct chain_link *l = p;
	struct chain *ch = l->ch;
	atomic_store(&ch->started[l->i], 1);
	if (l->i + 1 < CHAIN) {
		double deadline = t_now() + 10.0;
		weft_future_t *next;
		while ((next = atomic_load(&ch->fut[l->i + 1])) == NULL && t_now() < deadline)
			sched_yield();
		if (!next) {
			t_fail_at(__FILE__, __LINE__, "link %d: the next submission never came", l->i);
			return;
		}
		ch->rc[l->i] = weft_future_wait(next);
	}
	atomic_fetch_add(&ch->finished, 1);
}

Test(submit, nested_future_waits_one_worker, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(1);
	struct chain *ch = calloc(1, sizeof *ch);
	cr_assert_not_null(ch);
	for (int i = 0; i < CHAIN; i++) {
		ch->link[i] = (struct chain_link){ch, i};
		double deadline = t_now() + 10.0;
		while (i > 0 && !atomic_load(&ch->started[i - 1]) && t_now() < deadline)
			t_sleep_us(50);
		cr_assert(i == 0 || atomic_load(&ch->started[i - 1]), "link %d never started", i - 1);
		weft_future_t *f = NULL;
		cr_assert_eq(weft_submit(rt, chain_task, &ch->link[i], &f), 0);
		atomic_store(&ch->fut[i], f);
	}
	cr_assert_eq(weft_future_wait(atomic_load(&ch->fut[0])), 0);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&ch->finished), CHAIN);
	for (int i = 0; i + 1 < CHAIN; i++)
		cr_assert_eq(ch->rc[i], 0);
	for (int i = 0; i < CHAIN; i++)
		weft_future_free(atomic_load(&ch->fut[i]));
	t_destroy(rt);
	free(ch);
}
