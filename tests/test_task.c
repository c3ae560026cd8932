/*
 * test_task.c: typed tasks (include/weft/task.h, runtime/tdq.c).
 *   - fib is correct for 1, 2, 4 and 8 workers, and off the workers;
 *   - a tree of typed tasks over 10 million leaves (1 million with
 *     WEFT_TEST_QUICK) runs every leaf exactly once, on 2, 4 and 8
 *     workers, and every result comes back to its own sync;
 *   - more unsynced spawns on one worker than its slot array holds (the
 *     overflow chunks) still run each once, in the right order;
 *   - all four arities, and void tasks;
 *   - typed tasks mixed with weft_spawn groups in both directions;
 *   - a fiber running a task body does not suspend (weft_sleep and
 *     weft_yield in there still work, the fiber stays on its worker), and
 *     suspends again once the body returned;
 *   - a body that waits before its syncs, for something one of its own
 *     unsynced spawns does (write a pipe, set a flag), finishes on 1, 2
 *     and 4 workers, in a plain task and in a fiber;
 *   - spawns left unsynced by a body still run, exactly once, by the time
 *     WEFT_RUN returns (also beyond the slot array, and off the workers),
 *     and typed tasks work normally afterwards;
 *   - a WEFT_SYNC with nothing to pair with aborts with a message.
 */
#define _GNU_SOURCE
#include <signal.h>

#include "test_io_util.h" /* io_wg: wait for fibers */

/* ------------------------------------------------------------------ */
/* fib                                                                  */

WEFT_TASK_1(uint64_t, fibt, unsigned, n)
{
	if (n < 2)
		return n;
	WEFT_SPAWN(fibt, n - 1);
	uint64_t b = WEFT_CALL(fibt, n - 2);
	return WEFT_SYNC(fibt) + b;
}

struct fib_arg {
	unsigned n;
	uint64_t r;
};

static void fib_root(void *p)
{
	struct fib_arg *a = p;
	a->r = WEFT_RUN(fibt, a->n);
}

static void check_fib(unsigned workers, unsigned n)
{
	weft_runtime_t *rt = t_runtime(workers);
	for (int rep = 0; rep < 3; rep++) {
		struct fib_arg a = { n, 0 };
		t_run(rt, fib_root, &a);
		cr_assert_eq(a.r, t_fib_serial(n), "fib(%u) with %u workers = %llu, want %llu", n, workers,
		             (unsigned long long)a.r, (unsigned long long)t_fib_serial(n));
	}
	t_destroy(rt);
}

Test(task, fib_1_worker, .timeout = 60) { check_fib(1, (unsigned)t_size(30, 25)); }
Test(task, fib_2_workers, .timeout = 60) { check_fib(2, (unsigned)t_size(30, 25)); }
Test(task, fib_4_workers, .timeout = 60) { check_fib(4, (unsigned)t_size(30, 25)); }
Test(task, fib_8_workers, .timeout = 60) { check_fib(8, (unsigned)t_size(30, 25)); }

/* Stolen typed tasks count in the thief's steals and tasks_run, and never
 * as taken from the victim, whose derived tasks_run must not underflow:
 * one worker spawns flat loops of leaves, the other only steals them. */
static void flat_root(void *p);
static uint64_t squares(uint64_t n);
struct tree_arg {
	uint64_t n, r;
};

Test(task, stats_count_typed_steals_sanely, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	weft_stats_t total, per[2];
	for (int rep = 0; rep < 20; rep++) {
		struct tree_arg a = { 20000, 0 };
		t_run(rt, flat_root, &a);
		cr_assert_eq(a.r, squares(20000));
	}
	cr_assert_eq(weft_stats_get(rt, &total, per, 2), 2);
	for (int i = 0; i < 2; i++)
		cr_assert_lt(per[i].tasks_run, (uint64_t)1 << 40, "worker %d tasks_run %llu", i,
		             (unsigned long long)per[i].tasks_run);
	cr_assert_geq(total.tasks_run, total.steals);
	t_destroy(rt);
}

Test(task, fib_off_the_workers, .timeout = 60)
{
	/* No runtime at all: the spawns run one after the other here. */
	cr_assert_eq(WEFT_RUN(fibt, 20), t_fib_serial(20));
	/* And from an outside thread while a runtime exists. */
	weft_runtime_t *rt = t_runtime(2);
	cr_assert_eq(WEFT_RUN(fibt, 22), t_fib_serial(22));
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* Exactly once: a binary tree over [lo, hi), one leaf per index.       */

static atomic_uchar *leaf_seen;

/* Returns the sum of its leaf indices, so a result delivered to the wrong
 * sync (or a lost one) shows up in the total as well. */
WEFT_TASK_2(uint64_t, tree, uint64_t, lo, uint64_t, hi)
{
	if (hi - lo == 1) {
		unsigned char was = atomic_fetch_add_explicit(&leaf_seen[lo], 1, memory_order_relaxed);
		T_CHECK_EQ(was, 0);
		return lo;
	}
	uint64_t mid = lo + (hi - lo) / 2;
	WEFT_SPAWN(tree, mid, hi);
	uint64_t left = WEFT_CALL(tree, lo, mid);
	uint64_t right = WEFT_SYNC(tree);
	T_CHECK_EQ(right, (mid + hi - 1) * (hi - mid) / 2);
	return left + right;
}

static void tree_root(void *p)
{
	struct tree_arg *a = p;
	a->r = WEFT_RUN(tree, 0, a->n);
}

static void check_tree(unsigned workers)
{
	uint64_t n = t_size(10000000, 1000000);
	weft_runtime_t *rt = t_runtime(workers);
	struct tree_arg a = { n, 0 };

	leaf_seen = calloc(n, 1);
	cr_assert_not_null(leaf_seen);
	t_run(rt, tree_root, &a);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(a.r, n * (n - 1) / 2, "sum %llu", (unsigned long long)a.r);
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(leaf_seen[i], 1, "leaf %llu ran %u times", (unsigned long long)i, leaf_seen[i]);
	free(leaf_seen);
}

Test(task, tree_exactly_once_2_workers, .timeout = 120) { check_tree(2); }
Test(task, tree_exactly_once_4_workers, .timeout = 120) { check_tree(4); }
Test(task, tree_exactly_once_8_workers, .timeout = 120) { check_tree(8); }

/* ------------------------------------------------------------------ */
/* Overflow: a flat loop of spawns deeper than the slot array.          */

WEFT_TASK_1(uint64_t, square, uint64_t, x)
{
	return x * x;
}

WEFT_TASK_1(uint64_t, flat, uint64_t, n)
{
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++)
		WEFT_SPAWN(square, i);
	/* Syncs pair last-in first-out. */
	for (uint64_t i = n; i-- > 0;) {
		uint64_t r = WEFT_SYNC(square);
		T_CHECK_EQ(r, i * i);
		sum += r;
	}
	return sum;
}

static void flat_root(void *p)
{
	struct tree_arg *a = p;
	a->r = WEFT_RUN(flat, a->n);
}

static uint64_t squares(uint64_t n)
{
	uint64_t s = 0;
	for (uint64_t i = 0; i < n; i++)
		s += i * i;
	return s;
}

Test(task, overflow_beyond_the_slot_array, .timeout = 120)
{
	/* 262144 slots per worker (tunables.h): go well past them. */
	uint64_t n = 300000;
	for (unsigned workers = 1; workers <= 2; workers++) {
		weft_runtime_t *rt = t_runtime(workers);
		for (int rep = 0; rep < 2; rep++) {
			struct tree_arg a = { n, 0 };
			t_run(rt, flat_root, &a);
			T_ASSERT_CLEAN();
			cr_assert_eq(a.r, squares(n), "%u workers: sum %llu", workers, (unsigned long long)a.r);
		}
		t_destroy(rt);
	}
	/* Off the workers every spawn goes to the chunks. */
	cr_assert_eq(WEFT_RUN(flat, 1000), squares(1000));
	T_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------ */
/* Arities and void tasks                                               */

static atomic_ulong void_sum;

WEFT_VOID_TASK_1(add1, unsigned long, a)
{
	atomic_fetch_add(&void_sum, a);
}

WEFT_VOID_TASK_4(add4, unsigned long, a, unsigned long, b, unsigned long, c, unsigned long, d)
{
	atomic_fetch_add(&void_sum, a + b + c + d);
}

WEFT_TASK_3(double, mix3, int, a, double, b, char, c)
{
	return a + b + c;
}

WEFT_TASK_4(uint64_t, sum4, uint32_t, a, uint16_t, b, uint8_t, c, uint64_t, d)
{
	return (uint64_t)a + b + c + d;
}

WEFT_VOID_TASK_2(arities, int, rounds, int, unused)
{
	(void)unused;
	for (int i = 0; i < rounds; i++) {
		WEFT_SPAWN(add1, 1);
		WEFT_SPAWN(add4, 1, 2, 3, 4);
		WEFT_SPAWN(mix3, i, 0.5, 'a');
		WEFT_SPAWN(sum4, 70000, 60000, 250, (uint64_t)i << 33);
		T_CHECK_EQ(WEFT_SYNC(sum4), 70000u + 60000u + 250u + ((uint64_t)i << 33));
		double m = WEFT_SYNC(mix3);
		T_CHECK(m == i + 0.5 + 'a');
		WEFT_SYNC(add4);
		WEFT_SYNC(add1);
	}
}

static void arities_root(void *p)
{
	WEFT_RUN(arities, *(int *)p, 0);
}

Test(task, arities_and_void_tasks, .timeout = 60)
{
	int rounds = 20000;
	for (unsigned workers = 1; workers <= 4; workers *= 2) {
		weft_runtime_t *rt = t_runtime(workers);
		atomic_store(&void_sum, 0);
		t_run(rt, arities_root, &rounds);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(atomic_load(&void_sum), 11ul * (unsigned long)rounds);
	}
}

/* ------------------------------------------------------------------ */
/* Mixed with weft_spawn groups                                         */

/* A typed task that uses a group inside. */
WEFT_TASK_1(uint64_t, via_group, unsigned, n)
{
	/* Group tasks whose bodies run typed tasks (fib_root). */
	struct fib_arg x = { n, 0 }, y = { n + 1, 0 };
	weft_group_t g;
	weft_group_init(&g);
	T_CHECK_EQ(weft_spawn(&g, fib_root, &x), 0);
	T_CHECK_EQ(weft_spawn(&g, fib_root, &y), 0);
	WEFT_SPAWN(fibt, n + 2);
	uint64_t z = WEFT_SYNC(fibt);
	T_CHECK_EQ(weft_wait(&g), 0);
	return x.r + y.r + z;
}

WEFT_TASK_1(uint64_t, many_via_group, unsigned, k)
{
	if (k == 0)
		return WEFT_CALL(via_group, 15);
	WEFT_SPAWN(many_via_group, k - 1);
	uint64_t a = WEFT_CALL(many_via_group, k - 1);
	return a + WEFT_SYNC(many_via_group);
}

static void mixed_root(void *p)
{
	struct fib_arg *a = p;
	a->r = WEFT_RUN(many_via_group, a->n);
}

Test(task, mixed_with_groups, .timeout = 60)
{
	uint64_t one = t_fib_serial(15) + t_fib_serial(16) + t_fib_serial(17);
	for (unsigned workers = 1; workers <= 4; workers *= 2) {
		weft_runtime_t *rt = t_runtime(workers);
		struct fib_arg a = { 8, 0 };
		t_run(rt, mixed_root, &a);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(a.r, one << 8, "%u workers: %llu", workers, (unsigned long long)a.r);
	}
}

/* ------------------------------------------------------------------ */
/* Fibers: no suspension while a task body is on the fiber's stack.     */

struct fiber_state {
	struct io_wg wg;    /* the test thread waits for the fibers */
	atomic_int done;
	atomic_int moved;   /* a body saw its worker change */
	atomic_int bad;     /* wrong results */
};

WEFT_TASK_2(uint64_t, sleepy, unsigned, n, struct fiber_state *, st)
{
	int before = weft_worker_index();
	/* Both would suspend the fiber outside a task body. */
	T_CHECK_EQ(weft_sleep(200000), 0);
	weft_yield();
	if (weft_worker_index() != before)
		atomic_fetch_add(&st->moved, 1);
	if (n < 2)
		return n;
	WEFT_SPAWN(sleepy, n - 1, st);
	uint64_t b = WEFT_CALL(sleepy, n - 2, st);
	return WEFT_SYNC(sleepy) + b;
}

static void fiber_main(void *p)
{
	struct fiber_state *st = p;
	for (int i = 0; i < 3; i++) {
		if (WEFT_RUN(sleepy, 8, st) != t_fib_serial(8))
			atomic_fetch_add(&st->bad, 1);
		/* Outside the body the fiber suspends as usual. */
		T_CHECK_EQ(weft_sleep(100000), 0);
		T_CHECK(weft_in_fiber());
	}
	atomic_fetch_add(&st->done, 1);
	io_wg_done(&st->wg);
}

Test(task, fiber_does_not_move_inside_a_body, .timeout = 60)
{
	enum { NFIBERS = 16 };
	weft_runtime_t *rt = t_runtime(2);
	struct fiber_state st;
	atomic_init(&st.done, 0);
	atomic_init(&st.moved, 0);
	atomic_init(&st.bad, 0);
	io_wg_init(&st.wg);
	io_wg_add(&st.wg, NFIBERS);
	for (int i = 0; i < NFIBERS; i++)
		cr_assert_eq(weft_go(rt, fiber_main, &st), 0);
	io_wg_wait(&st.wg);
	io_wg_fini(&st.wg);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&st.done), NFIBERS);
	cr_assert_eq(atomic_load(&st.bad), 0);
	cr_assert_eq(atomic_load(&st.moved), 0);
}

/* ------------------------------------------------------------------ */
/* Waiting inside a body for an unsynced spawn of its own               */

static int wait_pipe[2];
static atomic_int wait_flag;

WEFT_TASK_1(int, nop, int, i)
{
	return i;
}

WEFT_TASK_1(int, pipe_writer, int, fd)
{
	char c = 'x';
	return (int)write(fd, &c, 1);
}

WEFT_TASK_1(int, flag_setter, int, v)
{
	atomic_store(&wait_flag, v);
	return v;
}

/* Spawns nop (public at once: the public part is empty) and then a
 * writer (private), then reads the pipe the writer writes: the read can
 * finish only if the wait makes the writer run. */
WEFT_TASK_1(int, reader, int, x)
{
	char c = 0;
	WEFT_SPAWN(nop, 1);
	WEFT_SPAWN(pipe_writer, wait_pipe[1]);
	T_CHECK_EQ(weft_read(wait_pipe[0], &c, 1, -1), 1);
	T_CHECK_EQ(c, 'x');
	int w = WEFT_SYNC(pipe_writer);
	return x + w + WEFT_SYNC(nop);
}

/* The same with a weft_yield loop on a flag. */
WEFT_TASK_1(int, yielder, int, x)
{
	WEFT_SPAWN(nop, 1);
	WEFT_SPAWN(flag_setter, 1);
	while (!atomic_load(&wait_flag))
		weft_yield();
	int v = WEFT_SYNC(flag_setter);
	return x + v + WEFT_SYNC(nop);
}

struct wait_arg {
	struct io_wg wg;
	atomic_int done;
	int r1, r2;
};

static void waiting_bodies(void *p)
{
	struct wait_arg *a = p;
	a->r1 = WEFT_RUN(reader, 10);
	atomic_store(&wait_flag, 0);
	a->r2 = WEFT_RUN(yielder, 20);
	atomic_store(&a->done, 1);
	io_wg_done(&a->wg);
}

Test(task, body_waits_for_its_own_spawn, .timeout = 60)
{
	cr_assert_eq(pipe(wait_pipe), 0);
	for (unsigned workers = 1; workers <= 4; workers *= 2) {
		for (int in_fiber = 0; in_fiber <= 1; in_fiber++) {
			weft_runtime_t *rt = t_runtime(workers);
			struct wait_arg a;
			atomic_init(&a.done, 0);
			a.r1 = a.r2 = 0;
			io_wg_init(&a.wg);
			io_wg_add(&a.wg, 1);
			if (in_fiber)
				cr_assert_eq(weft_go(rt, waiting_bodies, &a), 0);
			else
				t_run(rt, waiting_bodies, &a);
			io_wg_wait(&a.wg);
			io_wg_fini(&a.wg);
			t_destroy(rt);
			T_ASSERT_CLEAN();
			cr_assert(atomic_load(&a.done), "%u workers, fiber %d: stuck", workers, in_fiber);
			cr_assert_eq(a.r1, 12);
			cr_assert_eq(a.r2, 22);
		}
	}
	close(wait_pipe[0]);
	close(wait_pipe[1]);
}

/* ------------------------------------------------------------------ */
/* Misuse                                                               */

static atomic_uchar *forgot_ran;

WEFT_VOID_TASK_1(mark, uint64_t, i)
{
	atomic_fetch_add(&forgot_ran[i], 1);
}

/* Spawns n marks and syncs only the newest one. */
WEFT_TASK_1(int, forgetful, uint64_t, n)
{
	for (uint64_t i = 0; i < n; i++)
		WEFT_SPAWN(mark, i);
	WEFT_SYNC(mark);
	return 7;
}

struct forgot_arg {
	uint64_t n;
	int r;
	uint64_t fib;
};

static void forgot_root(void *p)
{
	struct forgot_arg *a = p;
	a->r = WEFT_RUN(forgetful, a->n);
	a->fib = WEFT_RUN(fibt, 20);
}

static void check_forgot(weft_runtime_t *rt, uint64_t n)
{
	struct forgot_arg a = { n, 0, 0 };
	forgot_ran = calloc(n, 1);
	cr_assert_not_null(forgot_ran);
	if (rt)
		t_run(rt, forgot_root, &a);
	else
		forgot_root(&a);
	cr_assert_eq(a.r, 7);
	cr_assert_eq(a.fib, t_fib_serial(20));
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(forgot_ran[i], 1, "n=%llu: mark %llu ran %u times", (unsigned long long)n,
		             (unsigned long long)i, forgot_ran[i]);
	free(forgot_ran);
}

Test(task, unsynced_spawns_run_once_by_the_end_of_weft_run, .timeout = 60)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		weft_runtime_t *rt = t_runtime(workers);
		check_forgot(rt, 3);
		check_forgot(rt, 1000);
		check_forgot(rt, 300000); /* beyond the 262144 slots: chunks */
		t_destroy(rt);
	}
	check_forgot(NULL, 3); /* off the workers: chunks only */
	check_forgot(NULL, 1000);
}

WEFT_TASK_1(int, lonely, int, x)
{
	return x + WEFT_SYNC(lonely);
}

Test(task, sync_without_spawn_aborts, .signal = SIGABRT, .timeout = 30)
{
	(void)WEFT_RUN(lonely, 1);
}
