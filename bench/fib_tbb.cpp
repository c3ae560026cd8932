/*
 * fib_tbb: fib with oneTBB task_group, the same shape as fib.c: run
 * fib(n-1) in the group, call fib(n-2) directly, wait.
 *
 *   fib_tbb [--n 32] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_tbb.h"
#include "fib.h"

static long fib_tbb(int n)
{
	if (n < 2)
		return n;
	long x = 0, y;
	tbb::task_group g;
	g.run([&x, n] { x = fib_tbb(n - 1); });
	y = fib_tbb(n - 2);
	g.wait();
	return x + y;
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

	for (int wi = 0; wi < o.nworkers; wi++) {
		const int w = (int)o.workers[wi];
		tbb::global_control gc(tbb::global_control::max_allowed_parallelism, w);
		tbb::task_arena arena(w);
		long r = 0;
		int ok = 1;
		for (int k = 0; k < o.warmup; k++)
			bench_tbb_time(arena, [&] { r = fib_tbb(n > 5 ? n - 5 : n); });
		for (int k = 0; k < o.reps; k++) {
			t[k] = bench_tbb_time(arena, [&] { r = fib_tbb(n); });
			ok &= r == expect;
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report("fib", "tbb", (unsigned)w, param, t, o.reps, result, ok);
	}
	return 0;
}
