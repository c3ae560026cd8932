/*
 * bench_util.h: timing, statistics, option parsing and CSV output shared by
 * every benchmark program (C and C++; weft and its peers).
 *
 * Output: one CSV line per (benchmark, runtime, workers, parameters):
 *
 *   bench,runtime,workers,param,reps,median_s,min_s,max_s,result,check
 *
 * param is a ';'-separated list of key=value (never a comma); median_s,
 * min_s and max_s are wall-clock seconds over `reps` timed repetitions
 * (idle/wake lines document their own meaning); result is the computed
 * answer and check is "ok" when it equals the known answer and no runtime
 * call failed, "FAIL" otherwise.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_MAX_WORKERS 64
#define BENCH_MAX_REPS 1000

#define BENCH_CSV_HEADER "bench,runtime,workers,param,reps,median_s,min_s,max_s,result,check"

struct bench_opts {
	unsigned workers[BENCH_MAX_WORKERS];
	int nworkers;
	int reps;   /* timed repetitions */
	int warmup; /* untimed warm-up runs before the timed ones */
	int header; /* print the CSV header line first */
};

/* Monotonic wall clock in seconds. */
static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User + system CPU seconds consumed so far by the whole process. */
static inline double bench_cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static inline void bench_sleep(double seconds)
{
	struct timespec ts;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* The first failure any thread reported; later ones are counted only. */
static inline int *bench_error_slot(void)
{
	static int err;
	return &err;
}

/* Record a failed runtime call (rc is a negative errno or any nonzero code). */
static inline void bench_fail(const char *what, int rc)
{
	if (__atomic_fetch_add(bench_error_slot(), 1, __ATOMIC_RELAXED) == 0)
		fprintf(stderr, "bench: %s failed: %d (%s)\n", what, rc,
		        rc < 0 ? strerror(-rc) : "error");
}

static inline int bench_failed(void)
{
	return __atomic_load_n(bench_error_slot(), __ATOMIC_RELAXED) != 0;
}

static inline int bench_parse_workers(struct bench_opts *o, const char *s)
{
	o->nworkers = 0;
	while (*s) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || v == 0 || v > 4096 || o->nworkers == BENCH_MAX_WORKERS)
			return -1;
		o->workers[o->nworkers++] = (unsigned)v;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return o->nworkers > 0 ? 0 : -1;
}

static inline void bench_opts_init(struct bench_opts *o, const char *workers, int reps)
{
	memset(o, 0, sizeof *o);
	bench_parse_workers(o, workers);
	o->reps = reps;
	o->warmup = 1;
	o->header = 1;
}

static inline void bench_usage_exit(const char *prog, const char *own)
{
	fprintf(stderr,
	        "usage: %s %s[--workers 1,2,...] [--reps N] [--warmup 0|1] [--no-header]\n",
	        prog, own);
	exit(2);
}

/* The value after option argv[*i]; exits with usage when missing. */
static inline const char *bench_optval(int argc, char **argv, int *i, const char *own)
{
	if (*i + 1 >= argc)
		bench_usage_exit(argv[0], own);
	return argv[++*i];
}

static inline long bench_optlong(int argc, char **argv, int *i, const char *own,
                                 long lo, long hi)
{
	const char *s = bench_optval(argc, argv, i, own);
	char *end;
	long v = strtol(s, &end, 0);
	if (end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "%s: bad value '%s' for %s (range %ld..%ld)\n",
		        argv[0], s, argv[*i - 1], lo, hi);
		exit(2);
	}
	return v;
}

/*
 * Try the options every benchmark shares.  Returns 1 when argv[*i] was one
 * of them (consuming its value), 0 otherwise.
 */
static inline int bench_common_arg(struct bench_opts *o, int argc, char **argv,
                                   int *i, const char *own)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--workers")) {
		if (bench_parse_workers(o, bench_optval(argc, argv, i, own)) != 0) {
			fprintf(stderr, "%s: bad --workers list\n", argv[0]);
			exit(2);
		}
	} else if (!strcmp(a, "--reps")) {
		o->reps = (int)bench_optlong(argc, argv, i, own, 1, BENCH_MAX_REPS);
	} else if (!strcmp(a, "--warmup")) {
		o->warmup = (int)bench_optlong(argc, argv, i, own, 0, 100);
	} else if (!strcmp(a, "--no-header")) {
		o->header = 0;
	} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		bench_usage_exit(argv[0], own);
	} else {
		return 0;
	}
	return 1;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median (mean of the middle two for even n), minimum and maximum. */
static inline void bench_stats(const double *t, int n, double *med, double *mn, double *mx)
{
	double *s;
	*med = *mn = *mx = 0.0;
	if (n <= 0 || !(s = (double *)malloc((size_t)n * sizeof *s)))
		return;
	memcpy(s, t, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
	*med = (n & 1) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
	*mn = s[0];
	*mx = s[n - 1];
	free(s);
}

/* Nearest-rank percentile (0 < p <= 100) of n samples; sorts t in place. */
static inline double bench_percentile(double *t, int n, double p)
{
	int k;
	if (n <= 0)
		return 0.0;
	qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
	k = (int)((p / 100.0) * n + 0.999999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return t[k - 1];
}

static inline void bench_print_header(const struct bench_opts *o)
{
	if (o->header)
		printf("%s\n", BENCH_CSV_HEADER);
	fflush(stdout);
}

/* One CSV line from n timed samples. */
static inline void bench_report(const char *bench, const char *runtime, unsigned workers,
                                const char *param, const double *t, int n,
                                const char *result, int ok)
{
	double med, mn, mx;
	bench_stats(t, n, &med, &mn, &mx);
	printf("%s,%s,%u,%s,%d,%.9f,%.9f,%.9f,%s,%s\n", bench, runtime, workers, param,
	       n, med, mn, mx, result, ok ? "ok" : "FAIL");
	fflush(stdout);
}

/*
 * The machine's own ceiling for `copies` workers ("ideal" rows): that many
 * threads each run the whole serial job at once, released together.
 * Returns the wall time until the last one finishes divided by copies: the
 * time a runtime with no overhead at all would need to split one job over
 * that many threads, given what the cores really deliver together (shared
 * caches and memory bandwidth, SMT siblings, clock boost, the hypervisor's
 * steal).  *result is the copies' common answer, or -1 when they disagree
 * or a thread could not start.
 */
struct bench_gate {
	pthread_mutex_t lock;
	pthread_cond_t open;
	int go;
};

struct bench_copy {
	long (*job)(const void *);
	const void *arg;
	struct bench_gate *gate;
	long result;
};

static void *bench_copy_main(void *p)
{
	struct bench_copy *c = (struct bench_copy *)p;
	pthread_mutex_lock(&c->gate->lock);
	while (!c->gate->go)
		pthread_cond_wait(&c->gate->open, &c->gate->lock);
	pthread_mutex_unlock(&c->gate->lock);
	c->result = c->job(c->arg);
	return NULL;
}

static inline double bench_copies(long (*job)(const void *), const void *arg, unsigned copies,
                                  long *result)
{
	struct bench_gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct bench_copy c[BENCH_MAX_WORKERS];
	pthread_t th[BENCH_MAX_WORKERS];
	unsigned n = 0;
	double t;

	*result = -1;
	if (copies == 0 || copies > BENCH_MAX_WORKERS)
		return 0.0;
	for (; n < copies; n++) {
		c[n].job = job;
		c[n].arg = arg;
		c[n].gate = &gate;
		c[n].result = -1;
		if (pthread_create(&th[n], NULL, bench_copy_main, &c[n]) != 0)
			break;
	}
	pthread_mutex_lock(&gate.lock);
	gate.go = 1;
	pthread_cond_broadcast(&gate.open);
	pthread_mutex_unlock(&gate.lock);
	t = bench_now();
	for (unsigned k = 0; k < n; k++)
		pthread_join(th[k], NULL);
	t = bench_now() - t;
	if (n == copies) {
		*result = c[0].result;
		for (unsigned k = 1; k < copies; k++)
			if (c[k].result != c[0].result)
				*result = -1;
	}
	return t / copies;
}

/* One "ideal" line per worker count of o: bench_copies of job(arg), whose
 * every copy must answer expect. */
static inline void bench_report_ideal(const struct bench_opts *o, const char *bench,
                                      const char *param, long (*job)(const void *),
                                      const void *arg, long expect)
{
	double t[BENCH_MAX_REPS];
	char result[32];

	for (int wi = 0; wi < o->nworkers; wi++) {
		long r = -1;
		int ok = 1;
		for (int k = 0; k < o->reps; k++) {
			t[k] = bench_copies(job, arg, o->workers[wi], &r);
			ok &= r == expect;
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report(bench, "ideal", o->workers[wi], param, t, o->reps, result, ok);
	}
}

/* A value the optimizer must assume is read. */
static inline void bench_keep(long v)
{
	__asm__ volatile("" : : "r"(v) : "memory");
}

#endif /* BENCH_UTIL_H */
