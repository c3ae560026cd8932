/*
 * test_fiber.c: fibers (weft_go, weft_in_fiber, weft_yield), migration,
 * fork-join and futures inside fibers, deep recursion on a fiber stack.
 * Every test runs on both backends (see IO_TEST in test_io_util.h).
 */
#define _GNU_SOURCE
#include <fenv.h>

#include "test_io_util.h"

/* ------------------------------------------------------------------ */
/* weft_go from outside and from inside; what a fiber sees              */

struct go_ctx {
	weft_runtime_t *rt;
	unsigned workers;
	struct t_latch latch;
	atomic_long parents, children;
	_Atomic uint8_t *ran; /* [2 * n]: parents then children */
	size_t n;
};

struct go_item {
	struct go_ctx *c;
	size_t id;
};

static void go_check_env(struct go_ctx *c)
{
	T_CHECK(weft_in_fiber());
	int w = weft_worker_index();
	T_CHECK(w >= 0 && (unsigned)w < c->workers);
	T_CHECK(weft_runtime_current() == c->rt);
}

static void go_child(void *p)
{
	struct go_item *it = p;
	go_check_env(it->c);
	atomic_fetch_add(&it->c->ran[it->c->n + it->id], 1);
	atomic_fetch_add(&it->c->children, 1);
	t_latch_done(&it->c->latch);
}

static void go_parent(void *p)
{
	struct go_item *it = p;
	struct go_ctx *c = it->c;
	go_check_env(c);
	atomic_fetch_add(&c->ran[it->id], 1);
	atomic_fetch_add(&c->parents, 1);
	/* From inside: a child fiber, then return without waiting for it. */
	io_go_here(go_child, it + c->n);
	t_latch_done(&c->latch);
}

IO_TEST(fiber, go_outside_and_inside)
{
	struct go_ctx c;
	memset(&c, 0, sizeof c);
	c.workers = 2;
	c.rt = io_rt(backend, c.workers);
	c.n = t_size(2000, 200);
	c.ran = calloc(2 * c.n, 1);
	struct go_item *items = calloc(2 * c.n, sizeof *items);
	cr_assert(c.ran && items);
	t_latch_init(&c.latch, (long)(2 * c.n));
	for (size_t i = 0; i < 2 * c.n; i++) {
		items[i].c = &c;
		items[i].id = i % c.n;
	}
	cr_assert_eq(weft_in_fiber(), 0, "the test thread is no fiber");
	for (size_t i = 0; i < c.n; i++)
		IO_GO(c.rt, go_parent, &items[i]);
	t_latch_wait(&c.latch);
	cr_assert_eq(atomic_load(&c.parents), (long)c.n);
	cr_assert_eq(atomic_load(&c.children), (long)c.n);
	for (size_t i = 0; i < 2 * c.n; i++)
		cr_assert_eq(c.ran[i], 1, "fiber %zu ran %u times", i, c.ran[i]);
	T_ASSERT_CLEAN();
	t_destroy(c.rt);
	t_latch_fini(&c.latch);
	free(items);
	free(c.ran);
}

/* weft_go returns before the fiber finishes; destroy waits for fibers
 * still running (yielding, not waiting for I/O, which destroy cancels). */
struct go_late {
	atomic_int done;
	long spins;
};

static void go_late_fiber(void *p)
{
	struct go_late *g = p;
	for (long i = 0; i < g->spins; i++)
		weft_yield();
	atomic_store(&g->done, 1);
}

IO_TEST(fiber, destroy_waits_for_fibers)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct go_late g[8];
	memset(g, 0, sizeof g);
	for (int i = 0; i < 8; i++) {
		g[i].spins = (long)t_size(20000, 2000);
		IO_GO(rt, go_late_fiber, &g[i]);
	}
	t_destroy(rt);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(atomic_load(&g[i].done), 1, "fiber %d had not finished when destroy returned", i);
	T_ASSERT_CLEAN();
}

/* In a plain task, no fiber; weft_go from a task works. */
struct task_go {
	atomic_int in_fiber_task;
	atomic_int fiber_ran;
	struct t_latch latch;
};

static void task_go_fiber(void *p)
{
	struct task_go *t = p;
	T_CHECK(weft_in_fiber());
	atomic_store(&t->fiber_ran, 1);
	t_latch_done(&t->latch);
}

static void task_go_task(void *p)
{
	struct task_go *t = p;
	atomic_store(&t->in_fiber_task, weft_in_fiber());
	io_go_here(task_go_fiber, t);
}

IO_TEST(fiber, go_from_task)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct task_go t;
	memset(&t, 0, sizeof t);
	t_latch_init(&t.latch, 1);
	atomic_store(&t.in_fiber_task, -1);
	t_run(rt, task_go_task, &t);
	t_latch_wait(&t.latch);
	cr_assert_eq(atomic_load(&t.in_fiber_task), 0, "weft_in_fiber() in a plain task");
	cr_assert_eq(atomic_load(&t.fiber_ran), 1);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	t_latch_fini(&t.latch);
}

/* ------------------------------------------------------------------ */
/* weft_yield interleaves fibers                                        */

#define YIELD_FIBERS 3

struct yield_ctx {
	atomic_int started;
	atomic_long steps[YIELD_FIBERS];
	atomic_long stalls[YIELD_FIBERS]; /* resumed with no one else progressing */
	atomic_int finished;
	long rounds;
};

struct yield_arg {
	struct yield_ctx *c;
	int id;
};

static long yield_others(struct yield_ctx *c, int id)
{
	long s = 0;
	for (int j = 0; j < YIELD_FIBERS; j++)
		if (j != id)
			s += atomic_load(&c->steps[j]);
	return s;
}

static void yield_fiber(void *p)
{
	struct yield_arg *a = p;
	struct yield_ctx *c = a->c;
	atomic_fetch_add(&c->started, 1);
	/* Wait (by yielding) until all fibers are there: up to seconds, since
	 * the test thread that starts them may be off its core a while on a
	 * loaded machine (100 000 yields, about 4 ms, were once too few). */
	double end = t_now() + 10.0;
	while (atomic_load(&c->started) < YIELD_FIBERS && t_now() < end)
		weft_yield();
	T_CHECK_EQ(atomic_load(&c->started), YIELD_FIBERS);
	for (long r = 0; r < c->rounds; r++) {
		long before = yield_others(c, a->id);
		atomic_fetch_add(&c->steps[a->id], 1);
		weft_yield();
		/* With one worker, yield let the others run: unless they
		 * had all finished, someone else made a step. */
		if (yield_others(c, a->id) == before && atomic_load(&c->finished) == 0)
			atomic_fetch_add(&c->stalls[a->id], 1);
		T_CHECK(weft_in_fiber());
	}
	atomic_fetch_add(&c->finished, 1);
}

IO_TEST(fiber, yield_interleaves)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct yield_ctx c;
	memset(&c, 0, sizeof c);
	c.rounds = (long)t_size(2000, 300);
	struct yield_arg a[YIELD_FIBERS];
	for (int i = 0; i < YIELD_FIBERS; i++) {
		a[i].c = &c;
		a[i].id = i;
		IO_GO(rt, yield_fiber, &a[i]);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
	for (int i = 0; i < YIELD_FIBERS; i++) {
		cr_assert_eq(atomic_load(&c.steps[i]), c.rounds);
		cr_assert_eq(atomic_load(&c.stalls[i]), 0,
		             "fiber %d: %ld of %ld weft_yield calls resumed it before any other "
		             "runnable fiber ran (1 worker)", i, atomic_load(&c.stalls[i]), c.rounds);
	}
}

/* The floating-point control state (rounding mode: MXCSR and the x87
 * control word on x86-64, FPCR on AArch64) belongs to each fiber: a switch
 * restores the incoming fiber's, also when it only differs from the
 * outgoing one's in the control bits. */
struct fpmode {
	atomic_int turn; /* which fiber's step is next */
	atomic_int bad;
};

static void fpmode_fiber(struct fpmode *m, int me, int mode)
{
	T_CHECK_EQ(fesetround(mode), 0);
	for (int step = 0; step < 100; step++) {
		while (atomic_load(&m->turn) != me)
			weft_yield();
		volatile double one = 1.0, three = 3.0;
		double q = one / three; /* rounds by the current mode */
		/* fegetround reads the x87 word on x86-64; the division
		 * (SSE) follows MXCSR: upward, it lands above the nearest. */
		if (fegetround() != mode || (mode == FE_UPWARD) != (q > 1.0 / 3.0))
			atomic_fetch_add(&m->bad, 1);
		atomic_store(&m->turn, 1 - me);
		weft_yield();
	}
	fesetround(FE_TONEAREST);
}

static void fpmode_up(void *p) { fpmode_fiber(p, 0, FE_UPWARD); }
static void fpmode_near(void *p) { fpmode_fiber(p, 1, FE_TONEAREST); }

IO_TEST(fiber, rounding_mode_is_per_fiber)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct fpmode m;
	atomic_init(&m.turn, 0);
	atomic_init(&m.bad, 0);
	IO_GO(rt, fpmode_up, &m);
	IO_GO(rt, fpmode_near, &m);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&m.bad), 0, "%d steps saw another fiber's rounding mode", atomic_load(&m.bad));
	cr_assert_eq(fegetround(), FE_TONEAREST);
}

/* weft_yield off the workers returns; in a plain task it runs another
 * task in place, so a plain task can yield until its own spawn ran, even
 * on 1 worker. */
static void set_flag(void *p)
{
	atomic_store((atomic_int *)p, 1);
}

static void yield_in_task(void *p)
{
	atomic_int *n = p, flag = 0;
	weft_group_t g;
	weft_group_init(&g);
	T_CHECK_EQ(weft_spawn(&g, set_flag, &flag), 0);
	while (!atomic_load(&flag))
		weft_yield();
	T_CHECK_EQ(weft_wait(&g), 0);
	atomic_fetch_add(n, 1);
}

IO_TEST(fiber, yield_outside_fibers)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	weft_yield(); /* test thread: sched_yield */
	atomic_int n = 0;
	t_run(rt, yield_in_task, &n);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&n), 1);
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* Migration: a fiber may resume on another worker                      */

#define MIG_FIBERS 8
#define MIG_SLEEPS 40

struct mig {
	unsigned workers;
	int idx[MIG_FIBERS][MIG_SLEEPS + 1];
	atomic_int ok[MIG_FIBERS];
};

struct mig_arg {
	struct mig *m;
	int id;
};

static void mig_fiber(void *p)
{
	struct mig_arg *a = p;
	struct mig *m = a->m;
	m->idx[a->id][0] = weft_worker_index();
	for (int s = 1; s <= MIG_SLEEPS; s++) {
		/* Keep the workers busy so that a wake may land elsewhere. */
		int rc = (s % 2) ? weft_sleep(100000) : (weft_yield(), 0);
		T_CHECK_EQ(rc, 0);
		int w = weft_worker_index(); /* re-read after every suspension */
		m->idx[a->id][s] = w;
		T_CHECK(w >= 0 && (unsigned)w < m->workers);
		T_CHECK(weft_in_fiber());
	}
	atomic_store(&m->ok[a->id], 1);
}

IO_TEST(fiber, migration_allowed)
{
	struct mig m;
	memset(&m, 0, sizeof m);
	m.workers = 3;
	weft_runtime_t *rt = io_rt(backend, m.workers);
	struct io_wg wg;
	io_wg_init(&wg);
	struct mig_arg a[MIG_FIBERS];
	for (int i = 0; i < MIG_FIBERS; i++) {
		a[i].m = &m;
		a[i].id = i;
		IO_GO_WG(rt, &wg, mig_fiber, &a[i]);
	}
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	int moved = 0;
	for (int i = 0; i < MIG_FIBERS; i++) {
		cr_assert_eq(atomic_load(&m.ok[i]), 1);
		for (int s = 0; s <= MIG_SLEEPS; s++)
			cr_assert(m.idx[i][s] >= 0 && (unsigned)m.idx[i][s] < m.workers);
		for (int s = 1; s <= MIG_SLEEPS; s++)
			moved += m.idx[i][s] != m.idx[i][s - 1];
	}
	cr_log_info("%s: %d worker changes seen across suspensions (allowed, not required)",
	            io_name(backend), moved);
}

/* ------------------------------------------------------------------ */
/* Fork-join inside fibers                                              */

struct fj {
	unsigned n;
	uint64_t got;
	int rc_pf;
	atomic_ulong pf_sum;
};

static void fj_body(size_t lo, size_t hi, void *ctx)
{
	struct fj *f = ctx;
	unsigned long s = 0;
	for (size_t i = lo; i < hi; i++)
		s += i;
	atomic_fetch_add(&f->pf_sum, s);
}

static void fj_fiber(void *p)
{
	struct fj *f = p;
	T_CHECK(weft_in_fiber());
	struct t_fib x = {f->n, 0};
	t_fib_task(&x);
	/* A sleep between the two: the group after may start on another
	 * worker than the one before. */
	T_CHECK_EQ(weft_sleep(1000000), 0);
	f->got = x.r;
	f->rc_pf = weft_parallel_for(0, 100000, 0, fj_body, f);
}

IO_TEST(fiber, forkjoin_in_fibers)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct io_wg wg;
	io_wg_init(&wg);
	struct fj f[6];
	memset(f, 0, sizeof f);
	for (int i = 0; i < 6; i++) {
		f[i].n = (unsigned)t_size(20, 14) + (unsigned)i % 3;
		IO_GO_WG(rt, &wg, fj_fiber, &f[i]);
	}
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(f[i].got, t_fib_serial(f[i].n), "fib(%u) = %llu", f[i].n,
		             (unsigned long long)f[i].got);
		cr_assert_eq(f[i].rc_pf, 0);
		cr_assert_eq(atomic_load(&f[i].pf_sum), 100000UL * 99999UL / 2);
	}
}

/* ------------------------------------------------------------------ */
/* weft_future_wait in a fiber suspends the fiber                       */

struct fw {
	weft_runtime_t *rt;
	atomic_int task_ran;
	atomic_int task_in_fiber;
	atomic_int task_worker;
	atomic_int fiber_waiting;
	atomic_int fiber_done;
	int wait_rc;
	int done_after;
};

static void fw_task(void *p)
{
	struct fw *f = p;
	/* The fiber submitted us and then waited: with one worker, we run
	 * while it is suspended, as a plain task (not nested on its stack). */
	T_CHECK_EQ(atomic_load(&f->fiber_waiting), 1);
	atomic_store(&f->task_in_fiber, weft_in_fiber());
	atomic_store(&f->task_worker, weft_worker_index());
	/* The task itself waits for a timer: another suspension while the
	 * fiber is suspended. */
	T_CHECK_EQ(weft_sleep(2000000), 0);
	atomic_store(&f->task_ran, 1);
}

static void fw_fiber(void *p)
{
	struct fw *f = p;
	weft_future_t *fut = NULL;
	int rc = weft_submit(f->rt, fw_task, f, &fut);
	T_CHECK_EQ(rc, 0);
	if (rc != 0)
		return;
	atomic_store(&f->fiber_waiting, 1);
	f->wait_rc = weft_future_wait(fut);
	f->done_after = weft_future_done(fut);
	T_CHECK_EQ(atomic_load(&f->task_ran), 1);
	T_CHECK(weft_in_fiber());
	weft_future_free(fut);
	atomic_store(&f->fiber_done, 1);
}

IO_TEST(fiber, future_wait_suspends_fiber)
{
	struct fw f;
	memset(&f, 0, sizeof f);
	atomic_store(&f.task_in_fiber, -1);
	atomic_store(&f.task_worker, -2);
	f.rt = io_rt(backend, 1);
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(f.rt, &wg, fw_fiber, &f);
	io_finish(f.rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&f.fiber_done), 1);
	cr_assert_eq(f.wait_rc, 0);
	cr_assert(f.done_after);
	cr_assert_eq(atomic_load(&f.task_worker), 0, "the task ran on the only worker");
	cr_assert_eq(atomic_load(&f.task_in_fiber), 0,
	             "the task ran inside the waiting fiber (on its stack) instead of after "
	             "suspending it");
}

/* Many fibers wait on futures of one slow-ish task each, 2 workers. */
struct fw_many {
	weft_runtime_t *rt;
	atomic_long ok;
};

static void fw_many_task(void *p)
{
	(void)p;
	T_CHECK_EQ(weft_sleep(500000), 0);
}

static void fw_many_fiber(void *p)
{
	struct fw_many *m = p;
	weft_future_t *fut = NULL;
	if (weft_submit(m->rt, fw_many_task, NULL, &fut) != 0) {
		t_fail_at(__FILE__, __LINE__, "weft_submit");
		return;
	}
	T_CHECK_EQ(weft_future_wait(fut), 0);
	T_CHECK(weft_future_done(fut));
	weft_future_free(fut);
	atomic_fetch_add(&m->ok, 1);
}

IO_TEST(fiber, many_fibers_wait_futures)
{
	struct fw_many m;
	memset(&m, 0, sizeof m);
	m.rt = io_rt(backend, 2);
	struct io_wg wg;
	io_wg_init(&wg);
	long n = (long)t_size(500, 100);
	for (long i = 0; i < n; i++)
		IO_GO_WG(m.rt, &wg, fw_many_fiber, &m);
	io_finish(m.rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&m.ok), n);
}

/* ------------------------------------------------------------------ */
/* Deep recursion within cfg.fiber_stack_size                           */

#define FRAME_BYTES 512

static __attribute__((noinline)) uint64_t deep(unsigned depth, uint64_t seed)
{
	volatile unsigned char frame[FRAME_BYTES];
	for (size_t i = 0; i < FRAME_BYTES; i += 64)
		frame[i] = (unsigned char)(seed + i);
	uint64_t r = depth ? deep(depth - 1, seed * 31 + depth) : seed;
	return r + frame[(seed % (FRAME_BYTES / 64)) * 64];
}

struct deep_arg {
	unsigned depth;
	uint64_t got;
	uint64_t want;
};

static void deep_fiber(void *p)
{
	struct deep_arg *d = p;
	/* Suspend in the middle of the stack's life, then recurse. */
	T_CHECK_EQ(weft_sleep(100000), 0);
	d->got = deep(d->depth, 7);
}

static void deep_case(int backend, size_t stack, unsigned depth)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.fiber_stack_size = stack;
	weft_runtime_t *rt = io_rt_cfg(backend, &cfg);
	struct io_wg wg;
	io_wg_init(&wg);
	struct deep_arg d[4];
	memset(d, 0, sizeof d);
	for (int i = 0; i < 4; i++) {
		d[i].depth = depth;
		IO_GO_WG(rt, &wg, deep_fiber, &d[i]);
	}
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	uint64_t want = deep(depth, 7);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(d[i].got, want);
}

/* Frames of ~FRAME_BYTES + overhead: use about half of the stack (the
 * sanitizers make frames bigger). */
IO_TEST(fiber, deep_recursion_default_stack)
{
	deep_case(backend, 0, (unsigned)((256u << 10) / 2 / (FRAME_BYTES + 128) / (T_SANITIZER_BUILD ? 3 : 1)));
}

IO_TEST(fiber, deep_recursion_big_stack)
{
	deep_case(backend, 4u << 20, (unsigned)((4u << 20) / 2 / (FRAME_BYTES + 128) / (T_SANITIZER_BUILD ? 3 : 1)));
}

/* The stack size comes from WEFT_FIBER_STACK as well. */
Test(fiber, stack_size_from_env, .timeout = IO_TIMEOUT)
{
	weft_config_t cfg;
	unsetenv("WEFT_FIBER_STACK");
	weft_config_init(&cfg);
	size_t dflt = cfg.fiber_stack_size;
	cr_assert(dflt == 0 || dflt == 256u << 10, "default fiber_stack_size %zu", dflt);
	setenv("WEFT_FIBER_STACK", "1048576", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.fiber_stack_size, 1048576);
	setenv("WEFT_FIBER_STACK", "lots", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.fiber_stack_size, dflt, "a malformed value keeps the default");
	unsetenv("WEFT_FIBER_STACK");
}
