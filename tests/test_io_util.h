/*
 * test_io_util.h: helpers shared by the event-completion tests
 * (test_fiber.c, test_timer.c, test_io.c, test_io_cancel.c,
 * test_io_errors.c).  Builds on test_util.h.
 *
 * Both backends
 *   IO_TEST(suite, name, opts...) defines a body `static void
 *   suite_name(int backend)` and two Criterion tests, name_uring and
 *   name_epoll, that call it with WEFT_IO_URING and WEFT_IO_EPOLL.  Inside,
 *   io_rt(backend, workers) creates the runtime with cfg.io = backend.  When
 *   io_uring cannot be set up on this machine (probed with liburing
 *   directly) the uring variant is skipped with a message; when it can, a
 *   failure to create the runtime fails the test.
 *
 * Waiting for fibers
 *   weft_go returns no handle.  weft_runtime_destroy waits for all fibers
 *   but cancels their pending I/O (-ECANCELED), so a test whose fibers must
 *   finish their I/O starts them with IO_GO_WG and waits with io_finish
 *   (a wait group, then destroy), or counts them down on a t_latch.
 *   Checks inside fibers use T_CHECK/T_CHECK_EQ (test_util.h).
 *
 * Knowing that a fiber is suspended
 *   With ONE worker, code that runs while fiber A has set a flag just
 *   before a blocking call (and has no suspension point between the flag
 *   and the call) knows that A is suspended inside that call: the only
 *   thread that could run A is the one running us.  Tests that must act on
 *   a waiting operation (close, cancel, reset) use this instead of sleeps.
 */
#ifndef WEFT_TEST_IO_UTIL_H
#define WEFT_TEST_IO_UTIL_H

#include "test_util.h"

#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Criterion's per-test timeout (seconds): a hang fails the test. */
#define IO_TIMEOUT 60

#define IO_TEST(suite, name, ...)                                                   \
	static void suite##_##name(int backend);                                     \
	Test(suite, name##_uring, .timeout = IO_TIMEOUT, ##__VA_ARGS__)              \
	{                                                                            \
		suite##_##name(WEFT_IO_URING);                                       \
	}                                                                            \
	Test(suite, name##_epoll, .timeout = IO_TIMEOUT, ##__VA_ARGS__)              \
	{                                                                            \
		suite##_##name(WEFT_IO_EPOLL);                                       \
	}                                                                            \
	static void suite##_##name(int backend)

static inline const char *io_name(int backend)
{
	return backend == WEFT_IO_URING ? "io_uring" : backend == WEFT_IO_EPOLL ? "epoll" : "auto";
}

/* 0 when this machine can set up an io_uring, else liburing's errno. */
static inline int io_uring_probe(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);
	if (rc == 0)
		io_uring_queue_exit(&ring);
	return rc;
}

/* Create a runtime on `backend` from a filled cfg (cfg->io is set here). */
static inline weft_runtime_t *io_rt_cfg(int backend, weft_config_t *cfg)
{
	weft_runtime_t *rt = NULL;
	cfg->io = backend;
	int rc = weft_runtime_create(&rt, cfg);
	if (rc != 0 && backend == WEFT_IO_URING) {
		int probe = io_uring_probe();
		if (probe != 0)
			cr_skip_test("io_uring unavailable here (io_uring_queue_init: %s): "
			             "uring variant skipped", strerror(-probe));
		const char *inj = getenv("WEFT_IO_INJECT_FAIL");
		if (inj && *inj && strcmp(inj, "0") != 0)
			cr_skip_test("WEFT_IO_INJECT_FAIL is set: uring variant skipped");
	}
	cr_assert_eq(rc, 0, "weft_runtime_create(io=%s, workers=%u) = %d (%s)", io_name(backend),
	             cfg->workers, rc, weft_strerror(rc));
	cr_assert_not_null(rt);
	int got = weft_runtime_io_backend(rt);
	cr_assert_eq(got, backend, "asked for %s, runtime runs on %d (note: %s)", io_name(backend), got,
	             weft_runtime_io_note(rt) ? weft_runtime_io_note(rt) : "none");
	return rt;
}

static inline weft_runtime_t *io_rt(int backend, unsigned workers)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = workers;
	weft_runtime_t *rt = io_rt_cfg(backend, &cfg);
	cr_assert_eq(weft_runtime_workers(rt), workers);
	return rt;
}

/* Start a fiber; assert success. */
#define IO_GO(rt, fn, arg)                                                                 \
	do {                                                                               \
		int io_go_rc_ = weft_go((rt), (fn), (arg));                                \
		cr_assert_eq(io_go_rc_, 0, "weft_go = %d (%s)", io_go_rc_, weft_strerror(io_go_rc_)); \
	} while (0)

/* In a fiber or task: start a fiber on the current runtime; record failure. */
static inline void io_go_here(weft_task_fn fn, void *arg)
{
	int rc = weft_go(weft_runtime_current(), fn, arg);
	if (rc != 0)
		t_fail_at(__FILE__, __LINE__, "weft_go from a worker = %d", rc);
}

/* ------------------------------------------------------------------ */
/* A count-down latch (fibers count down, the test thread waits).       */

struct t_latch {
	pthread_mutex_t m;
	pthread_cond_t c;
	long n;
};

static inline void t_latch_init(struct t_latch *l, long n)
{
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->c, NULL);
	l->n = n;
}

static inline void t_latch_fini(struct t_latch *l)
{
	pthread_cond_destroy(&l->c);
	pthread_mutex_destroy(&l->m);
}

/* Add k (negative: count down); waiters go once the count is 0 or less. */
static inline void t_latch_add(struct t_latch *l, long k)
{
	pthread_mutex_lock(&l->m);
	l->n += k;
	if (l->n <= 0)
		pthread_cond_broadcast(&l->c);
	pthread_mutex_unlock(&l->m);
}

static inline void t_latch_done(struct t_latch *l) { t_latch_add(l, -1); }

static inline void t_latch_wait(struct t_latch *l)
{
	pthread_mutex_lock(&l->m);
	while (l->n > 0)
		pthread_cond_wait(&l->c, &l->m);
	pthread_mutex_unlock(&l->m);
}

/* ------------------------------------------------------------------ */
/* A wait group for fibers: weft_runtime_destroy cancels pending I/O     */
/* (weft.h), so tests wait for their fibers with this before destroy.   */

struct io_wg {
	struct t_latch l; /* fibers started and not yet returned */
};

static inline void io_wg_init(struct io_wg *g) { t_latch_init(&g->l, 0); }
static inline void io_wg_fini(struct io_wg *g) { t_latch_fini(&g->l); }
static inline void io_wg_add(struct io_wg *g, long k) { t_latch_add(&g->l, k); }
static inline void io_wg_done(struct io_wg *g) { t_latch_add(&g->l, -1); }
/* Test thread: until every fiber started through g has returned. */
static inline void io_wg_wait(struct io_wg *g) { t_latch_wait(&g->l); }

struct io_tramp {
	weft_task_fn fn;
	void *arg;
	struct io_wg *wg;
};

static inline void io_tramp_main(void *p)
{
	struct io_tramp t = *(struct io_tramp *)p;
	free(p);
	t.fn(t.arg);
	io_wg_done(t.wg); /* last: the test may free everything after it */
}

/* weft_go(rt, fn, arg) counted in g; returns weft_go's result. */
static inline int io_wg_go_rt(weft_runtime_t *rt, struct io_wg *g, weft_task_fn fn, void *arg)
{
	struct io_tramp *t = malloc(sizeof *t);
	if (!t)
		return -ENOMEM;
	t->fn = fn;
	t->arg = arg;
	t->wg = g;
	io_wg_add(g, 1);
	int rc = weft_go(rt, io_tramp_main, t);
	if (rc != 0) {
		free(t);
		io_wg_done(g);
	}
	return rc;
}

#define IO_GO_WG(rt, g, fn, arg)                                                             \
	do {                                                                                 \
		int io_go_rc_ = io_wg_go_rt((rt), (g), (fn), (arg));                         \
		cr_assert_eq(io_go_rc_, 0, "weft_go = %d (%s)", io_go_rc_, weft_strerror(io_go_rc_)); \
	} while (0)

/* From a fiber or task of the runtime. */
static inline void io_wg_go_here(struct io_wg *g, weft_task_fn fn, void *arg)
{
	int rc = io_wg_go_rt(weft_runtime_current(), g, fn, arg);
	if (rc != 0)
		t_fail_at(__FILE__, __LINE__, "weft_go from a worker = %d", rc);
}

/* Wait for the fibers of g, then destroy rt. */
static inline void io_finish(weft_runtime_t *rt, struct io_wg *g)
{
	io_wg_wait(g);
	io_wg_fini(g);
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* Sockets (loopback only)                                             */

static inline void io_socketpair(int sv[2])
{
	int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	cr_assert_eq(rc, 0, "socketpair: %s", strerror(errno));
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port; *addr gets it. */
static inline int io_listener(struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(fd, 128), 0, "listen: %s", strerror(errno));
	socklen_t len = sizeof a;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	cr_assert_eq(a.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	cr_assert_neq(a.sin_port, 0);
	if (addr)
		*addr = a;
	return fd;
}

/* A connected TCP pair on loopback made with plain calls: *cli, *srv. */
static inline void io_tcp_pair(int *cli, int *srv)
{
	struct sockaddr_in a;
	int l = io_listener(&a);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(s, 0, "accept: %s", strerror(errno));
	close(l);
	*cli = c;
	*srv = s;
}

/* Bytes of the deterministic stream a test sends: byte i of stream `seed`. */
static inline unsigned char io_byte(uint64_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL ^ (seed * 0xD1B54A32D192ED03ULL);
	x ^= x >> 29;
	return (unsigned char)(x ^ (x >> 17));
}

static inline void io_fill(unsigned char *p, size_t n, uint64_t seed, uint64_t at)
{
	for (size_t i = 0; i < n; i++)
		p[i] = io_byte(seed, at + i);
}

/* Index of the first byte of p[0..n) that differs from the stream, or n. */
static inline size_t io_mismatch(const unsigned char *p, size_t n, uint64_t seed, uint64_t at)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != io_byte(seed, at + i))
			return i;
	return n;
}

static inline uint64_t io_fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001B3ULL;
	}
	return h;
}
#define IO_FNV_INIT 0xCBF29CE484222325ULL

static inline uint64_t io_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Open fds of this process (a leak check that needs no sanitizer). */
static inline int io_count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* Mappings of this process (fiber stacks are mmap'd with a guard page:
 * two mappings each; LeakSanitizer does not see them). */
static inline int io_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Yield (fiber) until *flag is nonzero, at most `limit` times. */
static inline int io_yield_until(atomic_int *flag, long limit)
{
	for (long i = 0; i < limit; i++) {
		if (atomic_load(flag))
			return 1;
		weft_yield();
	}
	return atomic_load(flag) != 0;
}

#endif /* WEFT_TEST_IO_UTIL_H */
