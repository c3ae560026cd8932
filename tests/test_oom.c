/*
 * test_oom.c: out of memory.  The test is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=posix_memalign, so every
 * allocation weft makes (it is linked in statically here) can be made to
 * fail; allocations inside libc and Criterion are not affected.  Every
 * failure must come back as -ENOMEM with nothing leaked (the ASan run in CI
 * checks the leaks) and the runtime still usable.
 */
#include "test_util.h"

#include <stdlib.h>

/* -1: never fail; n >= 0: let n more allocations succeed, then fail. */
static atomic_long fail_after = -1;

static int should_fail(void)
{
	long v = atomic_load(&fail_after);
	while (v >= 0) {
		if (v == 0)
			return 1;
		if (atomic_compare_exchange_weak(&fail_after, &v, v - 1))
			return 0;
	}
	return 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return should_fail() ? NULL : __real_calloc(n, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
	return should_fail() ? ENOMEM : __real_posix_memalign(p, align, n);
}

Test(oom, create_fails_cleanly_at_every_allocation, .timeout = 60)
{
	weft_config_t cfg;
	int k, rc;

	weft_config_init(&cfg);
	cfg.workers = 2;
	for (k = 0;; k++) {
		weft_runtime_t *rt = (weft_runtime_t *)&cfg; /* must be reset to NULL */
		atomic_store(&fail_after, k);
		rc = weft_runtime_create(&rt, &cfg);
		atomic_store(&fail_after, -1);
		if (rc == 0) {
			cr_assert_not_null(rt);
			t_destroy(rt);
			break;
		}
		cr_assert_eq(rc, -ENOMEM, "allocation %d failed: create returned %d (%s)", k, rc, weft_strerror(rc));
		cr_assert_null(rt, "a failed create leaves *rt NULL");
		cr_assert_lt(k, 1000, "create kept failing");
	}
	cr_assert_gt(k, 2, "create allocates several things; only %d were failed", k);
}

struct grow_ctx {
	atomic_int ran;
	int rc_full, rc_after;
};

static void count_task(void *p)
{
	atomic_fetch_add(&((struct grow_ctx *)p)->ran, 1);
}

static void grow_root(void *p)
{
	struct grow_ctx *c = p;
	weft_group_t g;

	weft_group_init(&g);
	/* Capacity 2: two spawns fit without growing. */
	if (weft_spawn(&g, count_task, c) || weft_spawn(&g, count_task, c))
		t_fail_at(__FILE__, __LINE__, "spawns within capacity failed");
	atomic_store(&fail_after, 0);
	c->rc_full = weft_spawn(&g, count_task, c); /* must grow: fails */
	atomic_store(&fail_after, -1);
	c->rc_after = weft_spawn(&g, count_task, c); /* grows now */
	weft_wait(&g);
}

Test(oom, spawn_reports_enomem_and_loses_nothing, .timeout = 30)
{
	weft_config_t cfg;
	weft_runtime_t *rt;
	struct grow_ctx c = { 0, 1, 1 };

	weft_config_init(&cfg);
	cfg.workers = 1; /* nobody steals: the deque really fills */
	cfg.deque_log2 = 1;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	t_run(rt, grow_root, &c);
	cr_assert_eq(t_failures(), 0, "%s", t_fail_msg_);
	cr_assert_eq(c.rc_full, -ENOMEM);
	cr_assert_eq(c.rc_after, 0);
	cr_assert_eq(atomic_load(&c.ran), 3, "the three accepted spawns ran, the refused one did not");
	t_destroy(rt);
}

Test(oom, submit_and_run_report_enomem, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	struct grow_ctx c = { 0, 0, 0 };
	weft_future_t *f = (weft_future_t *)&c;
	int rc_submit, rc_run;

	atomic_store(&fail_after, 0);
	rc_submit = weft_submit(rt, count_task, &c, &f);
	rc_run = weft_run(rt, count_task, &c);
	atomic_store(&fail_after, -1);
	cr_assert_eq(rc_submit, -ENOMEM);
	cr_assert_null(f, "a failed submit leaves *future NULL");
	cr_assert_eq(rc_run, -ENOMEM);
	/* Still usable. */
	t_run(rt, count_task, &c);
	cr_assert_eq(atomic_load(&c.ran), 1);
	t_destroy(rt);
}
