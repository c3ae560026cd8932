/*
 * fib: a task per call, no cutoff, in the spawn-one/call-one shape:
 * fib(n-1) is spawned, fib(n-2) is called directly, then the group is
 * waited.  Every call with n >= 2 spawns exactly once, so fib(n) makes
 * F(n+1) - 1 spawns (printed as spawns= in param); ns per spawn+wait pair
 * is median_s / spawns.
 *
 * Prints two serial lines and two weft lines per worker count:
 *   serial        the plain recursive function (the serial elision), as
 *                 the compiler optimizes it (see fib.h);
 *   serial-calls  the same recursion with one real (indirect) call per
 *                 fib call, the baseline for per-spawn overhead;
 *   weft          weft_spawn / weft_wait on a weft_group_t;
 *   weft-task     a typed task (WEFT_TASK_1, WEFT_SPAWN, WEFT_SYNC).
 *
 *   fib [--n 32] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_weft.h"
#include "fib.h"

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
	rc = weft_spawn(&g, fib_task, &x);
	if (rc != 0) {
		bench_fail("weft_spawn", rc);
		fib_task(&x);
	}
	fib_task(&y);
	rc = weft_wait(&g);
	if (rc != 0)
		bench_fail("weft_wait", rc);
	a->r = x.r + y.r;
}

WEFT_TASK_1(long, fibt, int, n)
{
	if (n < 2)
		return n;
	WEFT_SPAWN(fibt, n - 1);
	long b = WEFT_CALL(fibt, n - 2);
	return WEFT_SYNC(fibt) + b;
}

static void fibt_task(void *p)
{
	struct fib_arg *a = p;
	a->r = WEFT_RUN(fibt, a->n);
}

int main(int argc, char **argv)
{
	static const char own[] = "[--n N] ";
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[96], result[32];
	int n = 32;

	bench_opts_init(&o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--n"))
			n = (int)bench_optlong(argc, argv, &i, own, 0, FIB_MAX_N);
		else
			bench_usage_exit(argv[0], own);
	}

	const long expect = fib_expected(n);
	snprintf(param, sizeof param, "n=%d;spawns=%lu", n, fib_spawns(n));
	bench_print_header(&o);

	/* serial */
	static const struct {
		const char *name;
		long (*fn)(int);
	} serial[] = { { "serial", fib_serial }, { "serial-calls", fib_calls } };
	for (size_t s = 0; s < sizeof serial / sizeof serial[0]; s++) {
		long r = 0;
		for (int w = 0; w < o.warmup; w++)
			bench_keep(serial[s].fn(n));
		for (int k = 0; k < o.reps; k++) {
			double t0 = bench_now();
			r = serial[s].fn(n);
			t[k] = bench_now() - t0;
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report("fib", serial[s].name, 1, param, t, o.reps, result, r == expect);
	}

	/* weft, both APIs */
	static const struct {
		const char *name;
		weft_task_fn fn;
	} api[] = { { "weft", fib_task }, { "weft-task", fibt_task } };
	for (int wi = 0; wi < o.nworkers; wi++) {
		for (size_t v = 0; v < sizeof api / sizeof api[0]; v++) {
			weft_runtime_t *rt = bench_weft_create(o.workers[wi]);
			struct fib_arg a = { n, 0 };
			int ok = 1;
			if (!rt) {
				snprintf(result, sizeof result, "error");
				bench_report("fib", api[v].name, o.workers[wi], param, t, 0, result, 0);
				continue;
			}
			for (int w = 0; w < o.warmup; w++) {
				struct fib_arg wa = { n > 5 ? n - 5 : n, 0 };
				bench_weft_run(rt, api[v].fn, &wa);
			}
			for (int k = 0; k < o.reps; k++) {
				a.r = -1;
				t[k] = bench_weft_run(rt, api[v].fn, &a);
				ok &= a.r == expect;
			}
			bench_weft_destroy(rt);
			snprintf(result, sizeof result, "%ld", a.r);
			bench_report("fib", api[v].name, o.workers[wi], param, t, o.reps, result,
			             ok && !bench_failed());
		}
	}
	return bench_failed() ? 1 : 0;
}
