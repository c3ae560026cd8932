/*
 * spawn_omp: spawn_pair and spawn_flat of spawn.c with OpenMP tasks
 * (task + taskwait; ops tasks + one taskwait), inside one `single`.
 *
 *   spawn_omp [--ops 1000000] [--workers 1,2] [--reps 5] [--warmup 1]
 *             [--no-header]
 */
#include "bench_omp.h"

static void bump(long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static double run(unsigned workers, int flat, long ops, long *count)
{
	long c = 0;
	double t0 = bench_now();
#pragma omp parallel num_threads(workers) shared(c)
	{
#pragma omp single
		{
			if (flat) {
				for (long i = 0; i < ops; i++) {
#pragma omp task shared(c)
					bump(&c);
				}
#pragma omp taskwait
			} else {
				for (long i = 0; i < ops; i++) {
#pragma omp task shared(c)
					bump(&c);
#pragma omp taskwait
				}
			}
		}
	}
	*count = c;
	return bench_now() - t0;
}

int main(int argc, char **argv)
{
	static const char own[] = "[--ops N] ";
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[64], result[32];
	long ops = 1000000;

	bench_opts_init(&o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--ops"))
			ops = bench_optlong(argc, argv, &i, own, 1, 1L << 40);
		else
			bench_usage_exit(argv[0], own);
	}
	snprintf(param, sizeof param, "ops=%ld", ops);
	bench_omp_init();
	bench_print_header(&o);

	for (int wi = 0; wi < o.nworkers; wi++) {
		for (int flat = 0; flat < 2; flat++) {
			long c = 0;
			int ok = 1;
			for (int k = -o.warmup; k < o.reps; k++) {
				double dt = run(o.workers[wi], flat, ops, &c);
				if (k >= 0) {
					t[k] = dt;
					ok &= c == ops;
				}
			}
			snprintf(result, sizeof result, "%ld", c);
			bench_report(flat ? "spawn_flat" : "spawn_pair", BENCH_OMP_NAME, o.workers[wi],
			             param, t, o.reps, result, ok);
		}
	}
	return 0;
}
