/*
 * test_util.h: helpers shared by the weft Criterion tests (static inline,
 * one copy per test program).
 *
 * Stress sizes and WEFT_TEST_QUICK
 *   Every large count in the suite is written t_size(full, quick):
 *     WEFT_TEST_QUICK=1  bounded mode: the quick count (a tenth of the full
 *                        one, or less where a tenth is still too slow under
 *                        ThreadSanitizer).  CI sets it for the TSan pass:
 *                            cd build-tsan && WEFT_TEST_QUICK=1 make check
 *                        which keeps the whole TSan run to a few minutes on
 *                        2 cores.
 *     WEFT_TEST_QUICK=0  the full sizes the issue asks for (>= 10 million
 *                        deque items, >= 10 million fork-join tasks, ...).
 *     unset              full sizes, except in a sanitizer build (TSan or
 *                        ASan, detected at compile time), which defaults to
 *                        quick so that a bare `make check` there stays
 *                        bounded; set WEFT_TEST_QUICK=0 to force full sizes.
 *   Tests check behaviour, never speed: sizes only decide how hard a race
 *   is pushed.
 *
 * Checking from worker threads
 *   Criterion's cr_assert aborts the test with a longjmp that is only valid
 *   on the test's own thread, so code that runs in tasks or helper threads
 *   uses T_CHECK / T_CHECK_EQ, which record the first failure (file, line,
 *   text) and count them; the test thread then calls T_ASSERT_CLEAN().
 */
#ifndef WEFT_TEST_UTIL_H
#define WEFT_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "weft.h"

#define T_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------ */
/* Sizes                                                               */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(WEFT_TSAN) || defined(WEFT_ASAN)
#define T_SANITIZER_BUILD 1
#else
#define T_SANITIZER_BUILD 0
#endif

/* Nonzero in bounded (quick) mode; see the top of this file. */
static inline int t_quick(void)
{
	const char *s = getenv("WEFT_TEST_QUICK");
	if (s && *s)
		return strcmp(s, "0") != 0;
	return T_SANITIZER_BUILD;
}

/* The count to use: full normally, quick under WEFT_TEST_QUICK=1. */
static inline size_t t_size(size_t full, size_t quick)
{
	return t_quick() ? quick : full;
}

/* ------------------------------------------------------------------ */
/* Failures recorded off the test thread                               */

static atomic_uint t_fail_count_ T_UNUSED;
static atomic_int t_fail_claimed_ T_UNUSED;
static char t_fail_msg_[512] T_UNUSED;

static inline void __attribute__((format(printf, 3, 4)))
t_fail_at(const char *file, int line, const char *fmt, ...)
{
	atomic_fetch_add(&t_fail_count_, 1);
	if (atomic_exchange(&t_fail_claimed_, 1) == 0) {
		int n = snprintf(t_fail_msg_, sizeof t_fail_msg_, "%s:%d: ", file, line);
		va_list ap;
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof t_fail_msg_)
			vsnprintf(t_fail_msg_ + n, sizeof t_fail_msg_ - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

static inline unsigned t_failures(void) { return atomic_load(&t_fail_count_); }

#define T_CHECK(cond)                                                                  \
	do {                                                                           \
		if (!(cond))                                                           \
			t_fail_at(__FILE__, __LINE__, "check failed: %s", #cond);     \
	} while (0)

#define T_CHECK_EQ(a, b)                                                               \
	do {                                                                           \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);                \
		if (t_a_ != t_b_)                                                      \
			t_fail_at(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", \
			          #a, #b, t_a_, t_b_);                                 \
	} while (0)

/* On the test thread, after the tasks/threads are done. */
#define T_ASSERT_CLEAN()                                                               \
	cr_assert_eq(t_failures(), 0, "%u failed check(s) off the test thread; first: %s", \
	             t_failures(), t_fail_msg_)

/* ------------------------------------------------------------------ */
/* Time                                                                */

static inline double t_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void t_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline void t_sleep_ms(long ms) { t_sleep_us(ms * 1000); }

/* ------------------------------------------------------------------ */
/* A one-shot gate: tasks block on it until the test opens it.          */

struct t_gate {
	pthread_mutex_t m;
	pthread_cond_t c;
	int open;
};

static inline void t_gate_init(struct t_gate *g)
{
	pthread_mutex_init(&g->m, NULL);
	pthread_cond_init(&g->c, NULL);
	g->open = 0;
}

static inline void t_gate_fini(struct t_gate *g)
{
	pthread_cond_destroy(&g->c);
	pthread_mutex_destroy(&g->m);
}

static inline void t_gate_open(struct t_gate *g)
{
	pthread_mutex_lock(&g->m);
	g->open = 1;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
}

static inline int t_gate_is_open(struct t_gate *g)
{
	pthread_mutex_lock(&g->m);
	int o = g->open;
	pthread_mutex_unlock(&g->m);
	return o;
}

static inline void t_gate_wait(struct t_gate *g)
{
	pthread_mutex_lock(&g->m);
	while (!g->open)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

/* A task body that blocks on the gate passed as its argument. */
static inline void t_gate_task(void *arg) { t_gate_wait((struct t_gate *)arg); }

struct t_opener {
	struct t_gate *gate;
	long delay_ms;
	pthread_t thread;
};

static inline void *t_opener_main(void *p)
{
	struct t_opener *o = p;
	t_sleep_ms(o->delay_ms);
	t_gate_open(o->gate);
	return NULL;
}

/* Open gate after delay_ms from a helper thread; t_opener_join() later. */
static inline void t_open_later(struct t_opener *o, struct t_gate *gate, long delay_ms)
{
	o->gate = gate;
	o->delay_ms = delay_ms;
	int rc = pthread_create(&o->thread, NULL, t_opener_main, o);
	cr_assert_eq(rc, 0, "pthread_create: %d", rc);
}

static inline void t_opener_join(struct t_opener *o) { pthread_join(o->thread, NULL); }

/* ------------------------------------------------------------------ */
/* Runtimes                                                             */

static inline weft_runtime_t *t_runtime(unsigned workers)
{
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	weft_config_init(&cfg);
	cfg.workers = workers;
	int rc = weft_runtime_create(&rt, &cfg);
	cr_assert_eq(rc, 0, "weft_runtime_create(workers=%u) = %d (%s)", workers, rc, weft_strerror(rc));
	cr_assert_not_null(rt);
	if (workers)
		cr_assert_eq(weft_runtime_workers(rt), workers, "weft_runtime_workers = %u, want %u",
		             weft_runtime_workers(rt), workers);
	return rt;
}

static inline void t_destroy(weft_runtime_t *rt)
{
	int rc = weft_runtime_destroy(rt);
	cr_assert_eq(rc, 0, "weft_runtime_destroy = %d (%s)", rc, weft_strerror(rc));
}

/* Run fn(arg) on rt with weft_run and assert it returned 0. */
static inline void t_run(weft_runtime_t *rt, weft_task_fn fn, void *arg)
{
	int rc = weft_run(rt, fn, arg);
	cr_assert_eq(rc, 0, "weft_run = %d (%s)", rc, weft_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* Fork-join fib: one weft_spawn per call, group on the stack.          */

struct t_fib {
	unsigned n;
	uint64_t r;
};

static inline uint64_t t_fib_serial(unsigned n)
{
	uint64_t a = 0, b = 1;
	for (unsigned i = 0; i < n; i++) {
		uint64_t c = a + b;
		a = b;
		b = c;
	}
	return a;
}

static inline void t_fib_task(void *p)
{
	struct t_fib *a = p;
	if (a->n < 2) {
		a->r = a->n;
		return;
	}
	struct t_fib x = {a->n - 1, 0}, y = {a->n - 2, 0};
	weft_group_t g;
	weft_group_init(&g);
	int rc = weft_spawn(&g, t_fib_task, &x);
	if (rc != 0) {
		t_fail_at(__FILE__, __LINE__, "weft_spawn = %d", rc);
		t_fib_task(&x);
	}
	t_fib_task(&y);
	rc = weft_wait(&g);
	if (rc != 0)
		t_fail_at(__FILE__, __LINE__, "weft_wait = %d", rc);
	a->r = x.r + y.r;
}

/* ------------------------------------------------------------------ */
/* Misc                                                                 */

static inline uint64_t t_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Number of CPUs in the process's affinity mask. */
static inline unsigned t_ncpus(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

/* A cache-line padded counter, one per worker. */
struct t_padded {
	uint64_t v;
	char pad[64 - sizeof(uint64_t)];
};

/* ------------------------------------------------------------------ */
/* Running out of descriptors (EMFILE tests)                            */

/* Lower RLIMIT_NOFILE's soft limit to `extra` above the highest fd in use
 * (*saved gets the old limits).  Returns 0 or an errno. */
static inline int t_fd_limit_low(struct rlimit *saved, int extra)
{
	struct rlimit low;
	int maxfd = 0;

	if (getrlimit(RLIMIT_NOFILE, saved) != 0)
		return errno;
	for (int fd = 0; fd < 65536 && fd < (int)saved->rlim_cur; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			maxfd = fd;
	low = *saved;
	low.rlim_cur = (rlim_t)maxfd + 1 + (rlim_t)extra;
	return setrlimit(RLIMIT_NOFILE, &low) == 0 ? 0 : errno;
}

/* Descriptors taken by t_fd_fill. */
struct t_fd_fill {
	int fds[4096];
	int n;
	int err; /* why the last dup failed: EMFILE when the table is full */
};

/* dup() into every free descriptor below the soft limit (at most 4096 of
 * them: lower the limit first), then give `leave` of them back. */
static inline void t_fd_fill(struct t_fd_fill *f, int leave)
{
	f->n = 0;
	for (;;) {
		int d = dup(0);
		if (d < 0) {
			f->err = errno;
			break;
		}
		if (f->n == (int)(sizeof f->fds / sizeof f->fds[0])) {
			close(d);
			f->err = ENOSPC;
			break;
		}
		f->fds[f->n++] = d;
	}
	while (leave-- > 0 && f->n > 0)
		close(f->fds[--f->n]);
}

static inline void t_fd_unfill(struct t_fd_fill *f)
{
	while (f->n > 0)
		close(f->fds[--f->n]);
}

#endif /* WEFT_TEST_UTIL_H */
