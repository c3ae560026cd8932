/*
 * bench_io.h: what the event-completion benchmarks (fiber, pingpong,
 * uring_nop, sleepers, echo_server) share on top of bench_weft.h: the
 * --io backend list, a runtime on a given backend, a completion latch that
 * fibers can release without blocking a worker, latency statistics and
 * /proc/self/status readings.
 *
 * Runtime labels in the CSV: weft-uring, weft-epoll (the backend the
 * runtime really uses, from weft_runtime_io_backend; a run that asked for
 * one backend and got the other is marked FAIL).
 */
#ifndef BENCH_IO_H
#define BENCH_IO_H

#include <semaphore.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_weft.h"

#define BENCH_IO_MAX 2

struct bench_io_list {
	int io[BENCH_IO_MAX]; /* WEFT_IO_URING / WEFT_IO_EPOLL */
	int n;
};

/* "uring,epoll" (also "both", "all") -> list; -1 when malformed. */
static inline int bench_io_parse(struct bench_io_list *l, const char *s)
{
	l->n = 0;
	if (!strcmp(s, "both") || !strcmp(s, "all"))
		s = "uring,epoll";
	while (*s) {
		size_t k = strcspn(s, ",");
		int v;
		if (k == 5 && !strncmp(s, "uring", 5))
			v = WEFT_IO_URING;
		else if (k == 5 && !strncmp(s, "epoll", 5))
			v = WEFT_IO_EPOLL;
		else
			return -1;
		if (l->n == BENCH_IO_MAX)
			return -1;
		l->io[l->n++] = v;
		s += k;
		if (*s == ',')
			s++;
	}
	return l->n > 0 ? 0 : -1;
}

/* --io LIST; returns 1 when argv[*i] was it. */
static inline int bench_io_arg(struct bench_io_list *l, int argc, char **argv, int *i,
                               const char *own)
{
	if (strcmp(argv[*i], "--io"))
		return 0;
	if (bench_io_parse(l, bench_optval(argc, argv, i, own)) != 0) {
		fprintf(stderr, "%s: bad --io list (uring,epoll)\n", argv[0]);
		exit(2);
	}
	return 1;
}

static inline const char *bench_io_label(int io)
{
	return io == WEFT_IO_URING ? "weft-uring" : io == WEFT_IO_EPOLL ? "weft-epoll" : "weft-?";
}

/*
 * A runtime with `workers` workers on backend io (WEFT_IO_URING asked for
 * explicitly: creation fails rather than falling back), fibers on stacks
 * of fiber_stack bytes (0: the default).  NULL after printing why.
 */
static inline weft_runtime_t *bench_io_create(unsigned workers, int io, size_t fiber_stack)
{
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	int rc;

	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.io = io;
	if (fiber_stack)
		cfg.fiber_stack_size = fiber_stack;
	rc = weft_runtime_create(&rt, &cfg);
	if (rc != 0) {
		fprintf(stderr, "bench: weft_runtime_create(%u workers, %s): %s\n", workers,
		        bench_io_label(io), weft_strerror(rc));
		return NULL;
	}
	if (weft_runtime_io_backend(rt) != io) {
		const char *note = weft_runtime_io_note(rt);
		fprintf(stderr, "bench: asked for %s, runtime uses %s%s%s\n", bench_io_label(io),
		        bench_io_label(weft_runtime_io_backend(rt)), note ? ": " : "",
		        note ? note : "");
		bench_fail("weft_runtime_io_backend", -EINVAL);
	}
	return rt;
}

/*
 * A countdown that fibers and callbacks release without blocking their
 * worker (sem_post never blocks) and that an outside thread waits on.
 */
struct bench_latch {
	long left;
	sem_t sem;
};

static inline void bench_latch_init(struct bench_latch *l, long n)
{
	l->left = n;
	sem_init(&l->sem, 0, 0);
}

static inline void bench_latch_done(struct bench_latch *l)
{
	if (__atomic_sub_fetch(&l->left, 1, __ATOMIC_ACQ_REL) == 0)
		sem_post(&l->sem);
}

/* Wait at most timeout_s; returns 0, or -ETIMEDOUT. */
static inline int bench_latch_wait(struct bench_latch *l, double timeout_s)
{
	struct timespec ts;
	double end;
	clock_gettime(CLOCK_REALTIME, &ts);
	end = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + timeout_s;
	ts.tv_sec = (time_t)end;
	ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
	while (sem_timedwait(&l->sem, &ts) != 0) {
		if (errno == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

static inline void bench_latch_destroy(struct bench_latch *l)
{
	sem_destroy(&l->sem);
}

/* Monotonic nanoseconds. */
static inline uint64_t bench_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A field of /proc/self/status in kB ("VmRSS", "VmSize"); -1 if missing. */
static inline long bench_status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Raise the soft RLIMIT_NOFILE to at least want (up to the hard limit). */
static inline void bench_raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Median of n values (sorts a copy). */
static inline double bench_median(const double *v, int n)
{
	double med, mn, mx;
	bench_stats(v, n, &med, &mn, &mx);
	return med;
}

/* Deterministic per-stream pseudo-random numbers (xorshift64*). */
static inline uint64_t bench_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif /* BENCH_IO_H */
