/*
 * test_lifecycle.c: creating and destroying runtimes, configuration
 * (defaults, environment overrides, pinning, stack size), worker identity
 * (weft_worker_index, weft_runtime_current), and destroy from the wrong
 * place.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <sys/resource.h>

static void nop_task(void *p) { (void)p; }
static void count_task(void *p) { atomic_fetch_add((atomic_long *)p, 1); }

static void clear_env(void)
{
	unsetenv("WEFT_WORKERS");
	unsetenv("WEFT_PIN");
	unsetenv("WEFT_STACK");
}

/* ------------------------------------------------------------------ */
/* Create / destroy                                                     */

Test(lifecycle, create_destroy_1000_times, .timeout = 300)
{
	size_t n = t_size(1000, 100);
	atomic_long count = 0;
	long want = 0;
	for (size_t i = 0; i < n; i++) {
		weft_runtime_t *rt = t_runtime(2);
		switch (i % 4) {
		case 0: /* destroy at once: workers may not even have started */
			break;
		case 1: /* one detached task, destroyed while it is queued */
			cr_assert_eq(weft_submit(rt, count_task, &count, NULL), 0);
			want++;
			break;
		case 2: /* one weft_run */
			t_run(rt, count_task, &count);
			want++;
			break;
		default: /* a little fork-join */
		{
			struct t_fib f = {10, 0};
			t_run(rt, t_fib_task, &f);
			cr_assert_eq(f.r, 55);
			break;
		}
		}
		t_destroy(rt);
	}
	cr_assert_eq(atomic_load(&count), want);
	T_ASSERT_CLEAN();
}

Test(lifecycle, create_destroy_default_config, .timeout = 60)
{
	clear_env();
	for (int i = 0; i < 10; i++) {
		weft_runtime_t *rt = NULL;
		int rc = weft_runtime_create(&rt, NULL);
		cr_assert_eq(rc, 0, "weft_runtime_create(NULL cfg) = %d", rc);
		cr_assert_not_null(rt);
		/* workers = 0 (default): one per CPU of the affinity mask. */
		cr_assert_eq(weft_runtime_workers(rt), t_ncpus());
		struct t_fib f = {15, 0};
		t_run(rt, t_fib_task, &f);
		cr_assert_eq(f.r, 610);
		t_destroy(rt);
	}
	T_ASSERT_CLEAN();
}

Test(lifecycle, workers_zero_means_affinity_mask, .timeout = 30)
{
	clear_env();
	cpu_set_t old, one;
	cr_assert_eq(sched_getaffinity(0, sizeof old, &old), 0);
	int first = -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &old)) {
			first = c;
			break;
		}
	cr_assert_geq(first, 0);
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);

	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 0;
	weft_runtime_t *rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	unsigned w = weft_runtime_workers(rt);
	t_destroy(rt);
	sched_setaffinity(0, sizeof old, &old);
	cr_assert_eq(w, 1, "workers=0 with a 1-CPU affinity mask gave %u workers", w);
}

/* Eight workers on (typically) two cores. */
Test(lifecycle, oversubscribed_fib, .timeout = 120)
{
	weft_runtime_t *rt = t_runtime(8);
	for (unsigned n = 20; n <= 26; n += 3) {
		struct t_fib f = {n, 0};
		t_run(rt, t_fib_task, &f);
		cr_assert_eq(f.r, t_fib_serial(n), "fib(%u)", n);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

Test(lifecycle, several_runtimes_at_once, .timeout = 60)
{
	weft_runtime_t *rt[3];
	for (int i = 0; i < 3; i++)
		rt[i] = t_runtime((unsigned)i + 1);
	for (int i = 0; i < 3; i++) {
		struct t_fib f = {18, 0};
		t_run(rt[i], t_fib_task, &f);
		cr_assert_eq(f.r, t_fib_serial(18));
	}
	for (int i = 2; i >= 0; i--)
		t_destroy(rt[i]);
	T_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------ */
/* Environment overrides                                                */

Test(lifecycle, env_workers_override, .timeout = 30)
{
	clear_env();
	weft_config_t cfg;
	weft_config_init(&cfg);
	unsigned dflt = cfg.workers;

	cr_assert_eq(setenv("WEFT_WORKERS", "3", 1), 0);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.workers, 3, "WEFT_WORKERS=3 gave cfg.workers=%u", cfg.workers);
	weft_runtime_t *rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	cr_assert_eq(weft_runtime_workers(rt), 3);
	t_destroy(rt);

	/* cfg == NULL means defaults plus environment. */
	cr_assert_eq(setenv("WEFT_WORKERS", "5", 1), 0);
	rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, NULL), 0);
	cr_assert_eq(weft_runtime_workers(rt), 5, "WEFT_WORKERS=5 with cfg NULL gave %u workers",
	             weft_runtime_workers(rt));
	t_destroy(rt);

	/* Malformed values are ignored: the default stays. */
	static const char *bad[] = {"abc", "", "3x", "-2", "0x", " "};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(setenv("WEFT_WORKERS", bad[i], 1), 0);
		weft_config_init(&cfg);
		cr_assert_eq(cfg.workers, dflt, "malformed WEFT_WORKERS='%s' changed workers to %u (default %u)", bad[i],
		             cfg.workers, dflt);
	}
	clear_env();
}

Test(lifecycle, env_pin_and_stack_override, .timeout = 30)
{
	clear_env();
	weft_config_t cfg;
	weft_config_init(&cfg);
	int pin_dflt = cfg.pin;
	size_t stack_dflt = cfg.stack_size;

	setenv("WEFT_PIN", "1", 1);
	weft_config_init(&cfg);
	cr_assert_neq(cfg.pin, 0, "WEFT_PIN=1");
	setenv("WEFT_PIN", "0", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.pin, 0, "WEFT_PIN=0");
	setenv("WEFT_PIN", "maybe", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.pin, pin_dflt, "malformed WEFT_PIN");
	unsetenv("WEFT_PIN");

	setenv("WEFT_STACK", "16777216", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.stack_size, 16777216u, "WEFT_STACK=16777216 gave %zu", cfg.stack_size);
	setenv("WEFT_STACK", "lots", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.stack_size, stack_dflt, "malformed WEFT_STACK");
	clear_env();

	/* The documented defaults ("0 = ..." or the value it stands for). */
	weft_config_init(&cfg);
	cr_assert(cfg.stack_size == 0 || cfg.stack_size == 8u << 20, "stack_size default %zu", cfg.stack_size);
	cr_assert(cfg.deque_log2 == 0 || cfg.deque_log2 == 10, "deque_log2 default %u", cfg.deque_log2);
}

/* ------------------------------------------------------------------ */
/* Worker identity                                                      */

struct ident {
	weft_runtime_t *rt;
	unsigned workers;
	atomic_int arrived;
	_Atomic uint64_t seen_mask;
	atomic_int ntasks;
	pthread_t thread_of[64];
	_Atomic int thread_set[64];
};

static void ident_check(struct ident *c)
{
	int w = weft_worker_index();
	if (w < 0 || (unsigned)w >= c->workers) {
		t_fail_at(__FILE__, __LINE__, "weft_worker_index() = %d with %u workers", w, c->workers);
		return;
	}
	T_CHECK(weft_runtime_current() == c->rt);
	atomic_fetch_or(&c->seen_mask, 1ull << w);
	/* One index, one thread. */
	int expect = 0;
	if (atomic_compare_exchange_strong(&c->thread_set[w], &expect, 1)) {
		c->thread_of[w] = pthread_self();
		atomic_store(&c->thread_set[w], 2);
	} else {
		while (atomic_load(&c->thread_set[w]) != 2)
			;
		T_CHECK(pthread_equal(c->thread_of[w], pthread_self()));
	}
	atomic_fetch_add(&c->ntasks, 1);
}

/* Holds its worker until all `workers` of these tasks run at once (or a
 * generous deadline passes), so each must be on a different worker. */
static void ident_barrier_task(void *p)
{
	struct ident *c = p;
	ident_check(c);
	atomic_fetch_add(&c->arrived, 1);
	double deadline = t_now() + 20.0;
	while (atomic_load(&c->arrived) < (int)c->workers && t_now() < deadline)
		sched_yield();
}

static void ident_leaf(void *p) { ident_check(p); }

static void ident_spawner(void *p)
{
	weft_group_t g;
	weft_group_init(&g);
	for (int i = 0; i < 1000; i++)
		T_CHECK_EQ(weft_spawn(&g, ident_leaf, p), 0);
	T_CHECK_EQ(weft_wait(&g), 0);
}

Test(lifecycle, worker_index_and_current_runtime, .timeout = 120)
{
	cr_assert_eq(weft_worker_index(), -1, "off the workers");
	cr_assert_null(weft_runtime_current(), "off the workers");

	const unsigned workers = 3;
	struct ident *c = calloc(1, sizeof *c);
	cr_assert_not_null(c);
	c->workers = workers;
	c->rt = t_runtime(workers);

	/* Spawned tasks, on whatever worker. */
	t_run(c->rt, ident_spawner, c);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&c->ntasks), 1000);

	/* `workers` submitted tasks that only finish once all of them run at
	 * the same time: every worker must have picked one up. */
	weft_future_t *f[8];
	for (unsigned i = 0; i < workers; i++)
		cr_assert_eq(weft_submit(c->rt, ident_barrier_task, c, &f[i]), 0);
	for (unsigned i = 0; i < workers; i++) {
		cr_assert_eq(weft_future_wait(f[i]), 0);
		weft_future_free(f[i]);
	}
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&c->arrived), (int)workers);
	cr_assert_eq(atomic_load(&c->seen_mask), (1ull << workers) - 1, "indices seen: mask %#llx",
	             (unsigned long long)atomic_load(&c->seen_mask));

	/* Still -1 / NULL on this thread. */
	cr_assert_eq(weft_worker_index(), -1);
	cr_assert_null(weft_runtime_current());
	t_destroy(c->rt);
	free(c);
}

/* A task of one runtime using another one: it is an outside thread there. */
struct two_rt {
	weft_runtime_t *a, *b;
	int idx_in_b;
	weft_runtime_t *cur_in_b;
	int rc;
};

static void in_b(void *p)
{
	struct two_rt *t = p;
	t->idx_in_b = weft_worker_index();
	t->cur_in_b = weft_runtime_current();
}

static void in_a(void *p)
{
	struct two_rt *t = p;
	T_CHECK(weft_runtime_current() == t->a);
	t->rc = weft_run(t->b, in_b, t);
	T_CHECK(weft_runtime_current() == t->a);
}

Test(lifecycle, current_runtime_across_two_runtimes, .timeout = 30)
{
	struct two_rt t;
	memset(&t, 0, sizeof t);
	t.idx_in_b = -2;
	t.a = t_runtime(1);
	t.b = t_runtime(2);
	t_run(t.a, in_a, &t);
	T_ASSERT_CLEAN();
	cr_assert_eq(t.rc, 0);
	cr_assert_eq(t.cur_in_b, t.b);
	cr_assert(t.idx_in_b >= 0 && t.idx_in_b < 2, "index in b = %d", t.idx_in_b);
	t_destroy(t.b);
	t_destroy(t.a);
}

/* ------------------------------------------------------------------ */
/* Pinning and stack size                                               */

struct pin_ctx {
	int cpus[CPU_SETSIZE];
	int ncpu;
	unsigned workers;
	atomic_int checked;
};

static void pin_check(void *p)
{
	struct pin_ctx *c = p;
	int w = weft_worker_index();
	cpu_set_t set;
	CPU_ZERO(&set);
	int rc = pthread_getaffinity_np(pthread_self(), sizeof set, &set);
	T_CHECK_EQ(rc, 0);
	if (w < 0) {
		t_fail_at(__FILE__, __LINE__, "not on a worker");
		return;
	}
	int want = c->cpus[(unsigned)w % (unsigned)c->ncpu];
	if (CPU_COUNT(&set) != 1 || !CPU_ISSET(want, &set))
		t_fail_at(__FILE__, __LINE__, "worker %d: %d CPUs in its mask, want only CPU %d", w, CPU_COUNT(&set),
		          want);
	atomic_fetch_add(&c->checked, 1);
}

static void pin_root(void *p)
{
	weft_group_t g;
	weft_group_init(&g);
	for (int i = 0; i < 2000; i++)
		T_CHECK_EQ(weft_spawn(&g, pin_check, p), 0);
	T_CHECK_EQ(weft_wait(&g), 0);
}

Test(lifecycle, pinned_workers, .timeout = 60)
{
	clear_env();
	struct pin_ctx *c = calloc(1, sizeof *c);
	cr_assert_not_null(c);
	cpu_set_t mask;
	cr_assert_eq(sched_getaffinity(0, sizeof mask, &mask), 0);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &mask))
			c->cpus[c->ncpu++] = i;
	/* More workers than CPUs: round-robin. */
	c->workers = (unsigned)c->ncpu + 2;

	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = c->workers;
	cfg.pin = 1;
	weft_runtime_t *rt = NULL;
	int rc = weft_runtime_create(&rt, &cfg);
	cr_assert_eq(rc, 0, "create with pin=1: %d (%s)", rc, weft_strerror(rc));
	t_run(rt, pin_root, c);
	struct t_fib f = {22, 0};
	t_run(rt, t_fib_task, &f);
	cr_assert_eq(f.r, t_fib_serial(22));
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&c->checked), 2000);
	free(c);
}

/* Use about `bytes` of stack, touching every page. */
static __attribute__((noinline)) size_t use_stack(size_t bytes)
{
	volatile char buf[32768];
	for (size_t i = 0; i < sizeof buf; i += 512)
		buf[i] = (char)i;
	size_t r = buf[100];
	if (bytes > sizeof buf)
		r += use_stack(bytes - sizeof buf);
	return r + buf[sizeof buf - 1];
}

static void big_stack_task(void *p)
{
	*(size_t *)p = use_stack(*(size_t *)p) + 1;
}

Test(lifecycle, stack_size_honoured, .timeout = 60)
{
	clear_env();
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.stack_size = 64u << 20;
	weft_runtime_t *rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	/* 40 MiB of stack: five times the default, well inside 64 MiB. */
	size_t arg = 40u << 20;
	t_run(rt, big_stack_task, &arg);
	cr_assert_neq(arg, 40u << 20);
	/* Also from a spawned/submitted task (not just the weft_run root). */
	weft_future_t *f = NULL;
	arg = 40u << 20;
	cr_assert_eq(weft_submit(rt, big_stack_task, &arg, &f), 0);
	cr_assert_eq(weft_future_wait(f), 0);
	weft_future_free(f);
	t_destroy(rt);

	/* The default (8 MiB) holds 6 MiB. */
	rt = t_runtime(1);
	arg = 6u << 20;
	t_run(rt, big_stack_task, &arg);
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* Destroy                                                              */

struct self_destroy {
	weft_runtime_t *rt;
	int rc;
};

static void destroy_self(void *p)
{
	struct self_destroy *s = p;
	s->rc = weft_runtime_destroy(s->rt);
}

static void destroy_self_spawned(void *p)
{
	weft_group_t g;
	weft_group_init(&g);
	T_CHECK_EQ(weft_spawn(&g, destroy_self, p), 0);
	T_CHECK_EQ(weft_wait(&g), 0);
}

Test(lifecycle, destroy_from_inside_a_task_is_edeadlk, .timeout = 30)
{
	for (unsigned w = 1; w <= 2; w++) {
		weft_runtime_t *rt = t_runtime(w);
		struct self_destroy s = {rt, 1};
		t_run(rt, destroy_self, &s);
		cr_assert_eq(s.rc, -EDEADLK, "workers=%u: destroy in weft_run task = %d", w, s.rc);

		s.rc = 1;
		t_run(rt, destroy_self_spawned, &s);
		cr_assert_eq(s.rc, -EDEADLK, "workers=%u: destroy in spawned task = %d", w, s.rc);

		s.rc = 1;
		weft_future_t *f = NULL;
		cr_assert_eq(weft_submit(rt, destroy_self, &s, &f), 0);
		cr_assert_eq(weft_future_wait(f), 0);
		weft_future_free(f);
		cr_assert_eq(s.rc, -EDEADLK, "workers=%u: destroy in submitted task = %d", w, s.rc);

		/* Nothing was freed: the runtime still works. */
		struct t_fib fb = {15, 0};
		t_run(rt, t_fib_task, &fb);
		cr_assert_eq(fb.r, 610);
		t_destroy(rt);
	}
	T_ASSERT_CLEAN();
}

/* Destroying another runtime from a worker of this one is allowed. */
struct other {
	int rc_create, rc_destroy;
	uint64_t fib;
};

static void destroy_other(void *p)
{
	struct other *o = p;
	weft_runtime_t *rt2 = NULL;
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	o->rc_create = weft_runtime_create(&rt2, &cfg);
	if (o->rc_create)
		return;
	struct t_fib f = {16, 0};
	T_CHECK_EQ(weft_run(rt2, t_fib_task, &f), 0);
	o->fib = f.r;
	o->rc_destroy = weft_runtime_destroy(rt2);
}

Test(lifecycle, destroy_other_runtime_from_a_task, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(1);
	struct other o = {1, 1, 0};
	t_run(rt, destroy_other, &o);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(o.rc_create, 0);
	cr_assert_eq(o.fib, t_fib_serial(16));
	cr_assert_eq(o.rc_destroy, 0);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Idle workers park (no busy waiting) and a parked runtime still shuts
 * down: destroy must wake them. */
Test(lifecycle, idle_runtime_parks_and_destroys, .timeout = 60)
{
	const unsigned workers = 4;
	weft_runtime_t *rt = t_runtime(workers);
	struct t_fib f = {20, 0};
	t_run(rt, t_fib_task, &f);
	cr_assert_eq(f.r, t_fib_serial(20));
	t_sleep_ms(100); /* let the workers finish searching and park */

	const double idle = 1.0;
	double c0 = cpu_seconds(), w0 = t_now();
	t_sleep_ms((long)(idle * 1000));
	double used = cpu_seconds() - c0, wall = t_now() - w0;
	/* Spinning workers would burn ~min(workers, cores) CPU-seconds per
	 * second; parked ones next to nothing.  Allow 20% of one core. */
	cr_assert_lt(used, 0.2 * wall, "idle runtime used %.3f CPU-s in %.3f s: workers are not parking", used, wall);

	double t0 = t_now();
	t_destroy(rt);
	double took = t_now() - t0;
	cr_assert_lt(took, 10.0, "destroy of an idle runtime took %.3f s", took);
}

/* The idle runtime also takes new work again after parking. */
Test(lifecycle, work_after_idle, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	atomic_long count = 0;
	for (int round = 0; round < 5; round++) {
		t_sleep_ms(50);
		for (int i = 0; i < 100; i++)
			cr_assert_eq(weft_submit(rt, count_task, &count, NULL), 0);
		t_run(rt, nop_task, NULL);
		struct t_fib f = {18, 0};
		t_run(rt, t_fib_task, &f);
		cr_assert_eq(f.r, t_fib_serial(18));
	}
	t_destroy(rt);
	cr_assert_eq(atomic_load(&count), 500);
	T_ASSERT_CLEAN();
}
