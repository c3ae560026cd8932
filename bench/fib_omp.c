/*
 * fib_omp: fib with OpenMP tasks, the same shape as fib.c: a task for
 * fib(n-1), fib(n-2) called directly, taskwait.  One team of `workers`
 * threads per run; one thread starts the recursion inside `single`.
 *
 *   fib_omp [--n 32] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_omp.h"
#include "fib.h"

static long fib_omp(int n)
{
	long x = 0, y;
	if (n < 2)
		return n;
#pragma omp task shared(x) firstprivate(n)
	x = fib_omp(n - 1);
	y = fib_omp(n - 2);
#pragma omp taskwait
	return x + y;
}

static double run(unsigned workers, int n, long *r)
{
	long res = 0;
	double t0 = bench_now();
#pragma omp parallel num_threads(workers) shared(res)
	{
#pragma omp single
		res = fib_omp(n);
	}
	*r = res;
	return bench_now() - t0;
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
	bench_omp_init();
	const long expect = fib_expected(n);
	snprintf(param, sizeof param, "n=%d;spawns=%lu", n, fib_spawns(n));
	bench_print_header(&o);

	for (int wi = 0; wi < o.nworkers; wi++) {
		long r = 0;
		int ok = 1;
		for (int w = 0; w < o.warmup; w++)
			run(o.workers[wi], n > 5 ? n - 5 : n, &r);
		for (int k = 0; k < o.reps; k++) {
			t[k] = run(o.workers[wi], n, &r);
			ok &= r == expect;
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report("fib", BENCH_OMP_NAME, o.workers[wi], param, t, o.reps, result, ok);
	}
	return 0;
}
