/*
 * idle: what a weft runtime costs when it has nothing to do, and how fast
 * it wakes up.  One runtime per worker count (default 2).
 *
 *   idle_cpu  After a burst of fork-join work (fib), the process's CPU
 *             seconds (getrusage user+sys, main thread asleep) over a
 *             --window of wall time.  median_s/min_s/max_s are those CPU
 *             seconds over the repetitions; result is cpu_frac=, the median
 *             as a fraction of one CPU; check is FAIL when the idle workers
 *             burn more than 2% of one CPU (they are spinning, not parked).
 *   wake      Latency from an outside weft_submit to the start of the task,
 *             with --gap-ms of sleep before every submit so that the
 *             workers have parked; --samples of them.  median_s is p50,
 *             min_s/max_s the extremes, result is p99_s=.
 *   wake_rt   The same samples measured to the return of
 *             weft_future_wait in the submitting thread (round trip).
 *             Both also report runtime "pthread": the floor this machine
 *             sets, one plain thread parked in pthread_cond_wait and
 *             signalled after the same gap (the park of a textbook thread
 *             pool), its samples interleaved with weft's so that both see
 *             the same noise.
 *
 *   idle [--what idle,wake] [--window 2] [--samples 200] [--gap-ms 20]
 *        [--workers 2] [--reps 1] [--warmup 1] [--no-header]
 */
#include <pthread.h>

#include "bench_weft.h"
#include "fib.h"

#define IDLE_MAX_SAMPLES 100000

struct fib_arg {
	int n;
	long r;
};

static void fib_task(void *p)
{
	struct fib_arg *a = p;
	struct fib_arg x, y;
	weft_group_t g;
	int rc;

	if (a->n < 2) {
		a->r = a->n;
		return;
	}
	x.n = a->n - 1;
	y.n = a->n - 2;
	weft_group_init(&g);
	if ((rc = weft_spawn(&g, fib_task, &x)) != 0) {
		bench_fail("weft_spawn", rc);
		fib_task(&x);
	}
	fib_task(&y);
	if ((rc = weft_wait(&g)) != 0)
		bench_fail("weft_wait", rc);
	a->r = x.r + y.r;
}

static void stamp(void *p)
{
	*(double *)p = bench_now();
}

static void idle_cpu(const struct bench_opts *o, weft_runtime_t *rt, unsigned w, double window)
{
	double t[BENCH_MAX_REPS];
	char param[64], result[48];
	int ok = 1;

	snprintf(param, sizeof param, "window_s=%g", window);
	for (int k = 0; k < o->reps; k++) {
		for (int j = 0; j < 3; j++) {
			struct fib_arg a = { 27, 0 };
			bench_weft_run(rt, fib_task, &a);
			ok &= a.r == fib_expected(27);
		}
		double c0 = bench_cpu_seconds();
		bench_sleep(window);
		t[k] = bench_cpu_seconds() - c0;
	}
	double med, mn, mx;
	bench_stats(t, o->reps, &med, &mn, &mx);
	snprintf(result, sizeof result, "cpu_frac=%.6f", med / window);
	bench_report("idle_cpu", "weft", w, param, t, o->reps, result,
	             ok && med / window <= 0.02 && !bench_failed());
}

/* The baseline: a thread that parks in pthread_cond_wait until go, stamps
 * the time it runs again and answers through done. */
struct parked {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go, done, quit;
	double started;
};

static void *parked_main(void *p)
{
	struct parked *b = p;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->go && !b->quit)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->quit)
			break;
		b->started = bench_now();
		b->go = 0;
		b->done = 1;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* One baseline sample: signal the parked thread, wait for its answer.
 * Returns t0 through *t0 and the thread's start time. */
static double parked_wake(struct parked *b, double *t0)
{
	pthread_mutex_lock(&b->mu);
	*t0 = bench_now();
	b->go = 1;
	pthread_cond_broadcast(&b->cv);
	while (!b->done)
		pthread_cond_wait(&b->cv, &b->mu);
	b->done = 0;
	pthread_mutex_unlock(&b->mu);
	return b->started;
}

static void wake_report(const char *runtime, unsigned w, const char *param, double *lat,
                        double *rt_lat, int samples, int ok)
{
	static double tmp[IDLE_MAX_SAMPLES];
	char result[48];

	memcpy(tmp, lat, (size_t)samples * sizeof *tmp);
	snprintf(result, sizeof result, "p99_s=%.9f", bench_percentile(tmp, samples, 99.0));
	bench_report("wake", runtime, w, param, lat, samples, result, ok && !bench_failed());
	memcpy(tmp, rt_lat, (size_t)samples * sizeof *tmp);
	snprintf(result, sizeof result, "p99_s=%.9f", bench_percentile(tmp, samples, 99.0));
	bench_report("wake_rt", runtime, w, param, rt_lat, samples, result, ok && !bench_failed());
}

static void wake(weft_runtime_t *rt, unsigned w, int samples, double gap_ms, int warmup)
{
	static double lat[IDLE_MAX_SAMPLES], rt_lat[IDLE_MAX_SAMPLES];
	static double blat[IDLE_MAX_SAMPLES], brt_lat[IDLE_MAX_SAMPLES];
	struct parked b = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	pthread_t th;
	char param[64];
	int ok = 1, bok = 1, rc;

	snprintf(param, sizeof param, "samples=%d;gap_ms=%g", samples, gap_ms);
	if ((rc = pthread_create(&th, NULL, parked_main, &b)) != 0) {
		bench_fail("pthread_create", -rc);
		return;
	}
	for (int k = -warmup; k < samples; k++) {
		weft_future_t *f = NULL;
		double started = 0.0, t0, t1;

		bench_sleep(gap_ms * 1e-3);
		double bstarted = parked_wake(&b, &t0);
		t1 = bench_now();
		if (k >= 0) {
			blat[k] = bstarted - t0;
			brt_lat[k] = t1 - t0;
			bok &= bstarted >= t0 && bstarted <= t1;
		}
		bench_sleep(gap_ms * 1e-3);
		t0 = bench_now();
		rc = weft_submit(rt, stamp, &started, &f);
		if (rc != 0) {
			bench_fail("weft_submit", rc);
			ok = 0;
			break;
		}
		if ((rc = weft_future_wait(f)) != 0)
			bench_fail("weft_future_wait", rc);
		t1 = bench_now();
		weft_future_free(f);
		if (k >= 0) {
			lat[k] = started - t0;
			rt_lat[k] = t1 - t0;
			ok &= started >= t0 && started <= t1;
		}
	}
	pthread_mutex_lock(&b.mu);
	b.quit = 1;
	pthread_cond_broadcast(&b.cv);
	pthread_mutex_unlock(&b.mu);
	pthread_join(th, NULL);
	wake_report("weft", w, param, lat, rt_lat, samples, ok);
	wake_report("pthread", 1, param, blat, brt_lat, samples, bok);
}

int main(int argc, char **argv)
{
	static const char own[] =
		"[--what idle,wake] [--window S] [--samples N] [--gap-ms MS] ";
	struct bench_opts o;
	char what[32] = "idle,wake";
	double window = 2.0, gap_ms = 20.0;
	int samples = 200;

	bench_opts_init(&o, "2", 1);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--what"))
			snprintf(what, sizeof what, "%s", bench_optval(argc, argv, &i, own));
		else if (!strcmp(argv[i], "--window"))
			window = atof(bench_optval(argc, argv, &i, own));
		else if (!strcmp(argv[i], "--gap-ms"))
			gap_ms = atof(bench_optval(argc, argv, &i, own));
		else if (!strcmp(argv[i], "--samples"))
			samples = (int)bench_optlong(argc, argv, &i, own, 1, IDLE_MAX_SAMPLES);
		else
			bench_usage_exit(argv[0], own);
	}
	if (!(window > 0.0) || !(gap_ms >= 0.0)) {
		fprintf(stderr, "%s: --window must be > 0 and --gap-ms >= 0\n", argv[0]);
		return 2;
	}
	bench_print_header(&o);
	for (int wi = 0; wi < o.nworkers; wi++) {
		weft_runtime_t *rt = bench_weft_create(o.workers[wi]);
		if (!rt)
			continue;
		if (strstr(what, "idle"))
			idle_cpu(&o, rt, o.workers[wi], window);
		if (strstr(what, "wake"))
			wake(rt, o.workers[wi], samples, gap_ms, o.warmup);
		bench_weft_destroy(rt);
	}
	return bench_failed() ? 1 : 0;
}
