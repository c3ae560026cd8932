/*
 * test_errors.c: every documented error path of weft.h.  Each call must
 * return the documented negative errno (never crash, print or abort), and
 * the runtime must keep working afterwards.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <limits.h>

static atomic_int body_calls;

static void nop_task(void *p) { (void)p; }
static void body_count(size_t lo, size_t hi, void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&body_calls, (int)(hi - lo) + 1);
}

static int one_of(int rc, const int *codes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rc == codes[i])
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* weft_runtime_create / destroy / workers                              */

Test(errors, create_null_out, .timeout = 10)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cr_assert_eq(weft_runtime_create(NULL, &cfg), -EINVAL);
	cr_assert_eq(weft_runtime_create(NULL, NULL), -EINVAL);
}

Test(errors, create_deque_log2_out_of_range, .timeout = 30)
{
	static const unsigned bad[] = {25, 26, 32, 63, 64, 1000, UINT_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		weft_config_t cfg;
		weft_config_init(&cfg);
		cfg.workers = 1;
		cfg.deque_log2 = bad[i];
		weft_runtime_t *rt = NULL;
		int rc = weft_runtime_create(&rt, &cfg);
		cr_assert_eq(rc, -EINVAL, "deque_log2=%u: %d, want -EINVAL", bad[i], rc);
	}
	/* The ends of the accepted range 1..24 (and 0 = default) work; 1
	 * makes every worker deque grow. */
	static const unsigned good[] = {0, 1, 2, 24};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		weft_config_t cfg;
		weft_config_init(&cfg);
		cfg.workers = good[i] == 24 ? 1 : 2;
		cfg.deque_log2 = good[i];
		weft_runtime_t *rt = NULL;
		int rc = weft_runtime_create(&rt, &cfg);
		cr_assert_eq(rc, 0, "deque_log2=%u: %d (%s)", good[i], rc, weft_strerror(rc));
		struct t_fib f = {20, 0};
		t_run(rt, t_fib_task, &f);
		cr_assert_eq(f.r, t_fib_serial(20), "deque_log2=%u", good[i]);
		t_destroy(rt);
	}
	T_ASSERT_CLEAN();
}

Test(errors, create_absurd_workers, .timeout = 60)
{
	static const int fail_codes[] = {-EINVAL, -ENOMEM, -EAGAIN};
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	int rc;

	/* UINT_MAX workers cannot be started anywhere. */
	weft_config_init(&cfg);
	cfg.workers = UINT_MAX;
	rc = weft_runtime_create(&rt, &cfg);
	cr_assert(one_of(rc, fail_codes, 3), "workers=UINT_MAX: %d (%s)", rc, weft_strerror(rc));

	/* 100000: the header sets no limit, so success is allowed, but a
	 * failure must be a documented code. */
	weft_config_init(&cfg);
	cfg.workers = 100000;
	rt = NULL;
	rc = weft_runtime_create(&rt, &cfg);
	if (rc == 0)
		t_destroy(rt);
	else
		cr_assert(one_of(rc, fail_codes, 3), "workers=100000: %d (%s)", rc, weft_strerror(rc));

	/* A failed create leaves nothing behind that breaks the next one. */
	rt = t_runtime(2);
	t_run(rt, nop_task, NULL);
	t_destroy(rt);
}

Test(errors, create_odd_stack_sizes, .timeout = 30)
{
	static const int codes[] = {0, -EINVAL, -EAGAIN, -ENOMEM};
	static const size_t sizes[] = {1, 4096, SIZE_MAX, SIZE_MAX / 2};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		weft_config_t cfg;
		weft_config_init(&cfg);
		cfg.workers = 1;
		cfg.stack_size = sizes[i];
		weft_runtime_t *rt = NULL;
		int rc = weft_runtime_create(&rt, &cfg);
		cr_assert(one_of(rc, codes, 4), "stack_size=%zu: %d (%s)", sizes[i], rc, weft_strerror(rc));
		if (sizes[i] >= SIZE_MAX / 2)
			cr_assert_neq(rc, 0, "stack_size=%zu accepted", sizes[i]);
		if (rc == 0) {
			t_run(rt, nop_task, NULL);
			t_destroy(rt);
		}
	}
}

/* "pin: Nonzero: pin worker i to ..." - any nonzero value means pin. */
Test(errors, create_pin_any_nonzero, .timeout = 30)
{
	static const int pins[] = {1, 2, -1, INT_MAX};
	for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++) {
		weft_config_t cfg;
		weft_config_init(&cfg);
		cfg.workers = 2;
		cfg.pin = pins[i];
		weft_runtime_t *rt = NULL;
		int rc = weft_runtime_create(&rt, &cfg);
		cr_assert_eq(rc, 0, "pin=%d: %d (%s); the header says any nonzero value pins", pins[i], rc,
		             weft_strerror(rc));
		t_run(rt, nop_task, NULL);
		t_destroy(rt);
	}
}

Test(errors, destroy_and_workers_null, .timeout = 10)
{
	cr_assert_eq(weft_runtime_destroy(NULL), -EINVAL);
	cr_assert_eq(weft_runtime_workers(NULL), 0);
}

Test(errors, config_init_null_is_harmless, .timeout = 10)
{
	/* Not documented either way; the header promises that nothing here
	 * aborts because of a caller's mistake. */
	weft_config_init(NULL);
	weft_config_t cfg;
	weft_config_init(&cfg);
	cr_assert(cfg.deque_log2 <= 24);
}

/* ------------------------------------------------------------------ */
/* weft_run / weft_submit / futures                                     */

Test(errors, run_and_submit_null_arguments, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	weft_future_t *f = NULL;

	cr_assert_eq(weft_run(NULL, nop_task, NULL), -EINVAL);
	cr_assert_eq(weft_run(rt, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_run(NULL, NULL, NULL), -EINVAL);

	cr_assert_eq(weft_submit(NULL, nop_task, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_submit(NULL, nop_task, NULL, &f), -EINVAL);
	cr_assert_eq(weft_submit(rt, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_submit(rt, NULL, NULL, &f), -EINVAL);

	/* The runtime still works. */
	cr_assert_eq(weft_submit(rt, nop_task, NULL, &f), 0);
	cr_assert_eq(weft_future_wait(f), 0);
	weft_future_free(f);
	t_run(rt, nop_task, NULL);
	t_destroy(rt);
}

Test(errors, future_null, .timeout = 10)
{
	cr_assert_eq(weft_future_wait(NULL), -EINVAL);
	cr_assert_eq(weft_future_done(NULL), 0);
	weft_future_free(NULL); /* ignored */
}

static void future_null_on_worker(void *p)
{
	(void)p;
	T_CHECK_EQ(weft_future_wait(NULL), -EINVAL);
	T_CHECK_EQ(weft_future_done(NULL), 0);
	weft_future_free(NULL);
	T_CHECK_EQ(weft_submit(weft_runtime_current(), NULL, NULL, NULL), -EINVAL);
	T_CHECK_EQ(weft_run(weft_runtime_current(), NULL, NULL), -EINVAL);
	T_CHECK_EQ(weft_run(NULL, nop_task, NULL), -EINVAL);
}

Test(errors, future_and_submit_null_on_a_worker, .timeout = 10)
{
	weft_runtime_t *rt = t_runtime(1);
	t_run(rt, future_null_on_worker, NULL);
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------ */
/* Worker-only calls off the workers: -EPERM                            */

static void offworker_checks(void)
{
	weft_group_t g;
	memset(&g, 0xa5, sizeof g);
	weft_group_init(&g);
	atomic_store(&body_calls, 0);

	cr_assert_eq(weft_spawn(&g, nop_task, NULL), -EPERM);
	cr_assert_eq(weft_wait(&g), -EPERM);
	cr_assert_eq(weft_parallel_for(0, 100, 1, body_count, NULL), -EPERM);
	cr_assert_eq(weft_parallel_for(0, 100, 0, body_count, NULL), -EPERM);
	cr_assert_eq(atomic_load(&body_calls), 0, "parallel_for ran its body off the workers");

	/* Several errors at once: either code is a correct answer. */
	int rc = weft_spawn(NULL, nop_task, NULL);
	cr_assert(rc == -EINVAL || rc == -EPERM, "weft_spawn(NULL) off the workers: %d", rc);
	rc = weft_spawn(&g, NULL, NULL);
	cr_assert(rc == -EINVAL || rc == -EPERM, "weft_spawn(fn NULL) off the workers: %d", rc);
	rc = weft_wait(NULL);
	cr_assert(rc == -EINVAL || rc == -EPERM, "weft_wait(NULL) off the workers: %d", rc);
	rc = weft_parallel_for(0, 10, 1, NULL, NULL);
	cr_assert(rc == -EINVAL || rc == -EPERM, "weft_parallel_for(body NULL) off the workers: %d", rc);
	rc = weft_parallel_for(10, 0, 1, body_count, NULL);
	cr_assert(rc == -EINVAL || rc == -EPERM, "weft_parallel_for(10, 0) off the workers: %d", rc);

	weft_group_init(NULL); /* ignored */
	cr_assert_eq(weft_worker_index(), -1);
	cr_assert_null(weft_runtime_current());
}

Test(errors, worker_calls_off_workers_without_runtime, .timeout = 10)
{
	offworker_checks();
}

Test(errors, worker_calls_off_workers_with_runtime, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	t_run(rt, nop_task, NULL);
	offworker_checks();
	t_destroy(rt);
}

static void *offworker_thread(void *p)
{
	(void)p;
	weft_group_t g;
	weft_group_init(&g);
	T_CHECK_EQ(weft_spawn(&g, nop_task, NULL), -EPERM);
	T_CHECK_EQ(weft_wait(&g), -EPERM);
	T_CHECK_EQ(weft_parallel_for(0, 10, 1, body_count, NULL), -EPERM);
	T_CHECK_EQ(weft_worker_index(), -1);
	T_CHECK(weft_runtime_current() == NULL);
	return NULL;
}

Test(errors, worker_calls_from_another_outside_thread, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, offworker_thread, NULL), 0);
	pthread_join(th, NULL);
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------ */
/* Bad arguments on a worker: -EINVAL                                   */

struct on_worker {
	weft_group_t *offworker_group; /* initialised off the workers */
};

static void bad_args_on_worker(void *p)
{
	struct on_worker *ow = p;
	weft_group_t g, zero;
	weft_group_init(&g);
	memset(&zero, 0, sizeof zero);
	atomic_store(&body_calls, 0);

	T_CHECK_EQ(weft_spawn(NULL, nop_task, NULL), -EINVAL);
	T_CHECK_EQ(weft_spawn(&g, NULL, NULL), -EINVAL);
	T_CHECK_EQ(weft_spawn(&zero, nop_task, NULL), -EINVAL); /* not initialised */
	T_CHECK_EQ(weft_wait(NULL), -EINVAL);

	/* A group set up off the workers is for -EPERM there; here it is
	 * not a group this worker initialised. */
	int rc = weft_spawn(ow->offworker_group, nop_task, NULL);
	if (rc != -EPERM && rc != -EINVAL)
		t_fail_at(__FILE__, __LINE__, "weft_spawn on a group initialised off the workers: %d", rc);

	T_CHECK_EQ(weft_parallel_for(0, 10, 1, NULL, NULL), -EINVAL);
	T_CHECK_EQ(weft_parallel_for(10, 9, 1, body_count, NULL), -EINVAL);
	T_CHECK_EQ(weft_parallel_for(SIZE_MAX, 0, 0, body_count, NULL), -EINVAL);
	T_CHECK_EQ(weft_parallel_for(10, 9, 0, NULL, NULL), -EINVAL);
	/* Empty ranges are not errors and call nothing. */
	T_CHECK_EQ(weft_parallel_for(0, 0, 1, body_count, NULL), 0);
	T_CHECK_EQ(weft_parallel_for(5, 5, 0, body_count, NULL), 0);
	T_CHECK_EQ(weft_parallel_for(SIZE_MAX, SIZE_MAX, 3, body_count, NULL), 0);
	T_CHECK_EQ(atomic_load(&body_calls), 0);

	/* Nothing above broke the group. */
	T_CHECK_EQ(weft_spawn(&g, nop_task, NULL), 0);
	T_CHECK_EQ(weft_wait(&g), 0);
	weft_group_init(NULL); /* ignored on a worker too */
}

Test(errors, bad_arguments_on_a_worker, .timeout = 30)
{
	weft_group_t offg;
	weft_group_init(&offg);
	struct on_worker ow = {&offg};
	for (unsigned w = 1; w <= 2; w++) {
		weft_runtime_t *rt = t_runtime(w);
		t_run(rt, bad_args_on_worker, &ow);
		t_destroy(rt);
	}
	T_ASSERT_CLEAN();
}

/* weft_wait from a worker other than the group's initialiser: -EPERM. */
struct foreign {
	weft_group_t *g;
	int owner;
	int idx;
	int rc;
};

static void foreign_wait(void *p)
{
	struct foreign *f = p;
	f->idx = weft_worker_index();
	if (f->idx != f->owner)
		f->rc = weft_wait(f->g);
}

static void foreign_root(void *p)
{
	struct foreign *f = p;
	weft_group_t g;
	weft_group_init(&g);
	f->g = &g;
	f->owner = weft_worker_index();
	f->rc = 1;
	T_CHECK_EQ(weft_spawn(&g, nop_task, NULL), 0);
	weft_future_t *fut = NULL;
	T_CHECK_EQ(weft_submit(weft_runtime_current(), foreign_wait, f, &fut), 0);
	/* Spin without helping: the submitted task can only run on the
	 * other worker. */
	double deadline = t_now() + 20.0;
	while (fut && !weft_future_done(fut) && t_now() < deadline)
		sched_yield();
	if (fut && !weft_future_done(fut)) {
		t_fail_at(__FILE__, __LINE__, "the other worker never ran the submitted task");
		weft_future_wait(fut);
	}
	weft_future_free(fut);
	T_CHECK_EQ(weft_wait(&g), 0);
}

Test(errors, wait_from_another_worker_is_eperm, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	struct foreign f;
	memset(&f, 0, sizeof f);
	t_run(rt, foreign_root, &f);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_neq(f.idx, f.owner, "the task ran on the group's own worker");
	cr_assert_eq(f.rc, -EPERM, "weft_wait from another worker: %d, want -EPERM", f.rc);
}

/* ------------------------------------------------------------------ */
/* weft_strerror                                                        */

Test(errors, strerror_strings, .timeout = 10)
{
	static const int documented[] = {-EINVAL, -ENOMEM, -EAGAIN, -EPERM, -EDEADLK, -ESHUTDOWN};
	const size_t nd = sizeof documented / sizeof documented[0];
	for (size_t i = 0; i < nd; i++) {
		const char *s = weft_strerror(documented[i]);
		cr_assert_not_null(s, "weft_strerror(%d)", documented[i]);
		cr_assert_gt(strlen(s), 0, "weft_strerror(%d) is empty", documented[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, weft_strerror(documented[j]), "codes %d and %d share the text '%s'",
			                  documented[i], documented[j], s);
	}
	static const int other[] = {0, 1, -1, EINVAL, -9999, 9999, INT_MIN, INT_MAX, -ENOENT};
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		const char *s = weft_strerror(other[i]);
		cr_assert_not_null(s, "weft_strerror(%d)", other[i]);
		cr_assert_gt(strlen(s), 0, "weft_strerror(%d) is empty", other[i]);
	}
}
