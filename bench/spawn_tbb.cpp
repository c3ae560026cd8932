/*
 * spawn_tbb: spawn_pair and spawn_flat of spawn.c with oneTBB task_group
 * (a task_group per pair, as fib_tbb makes one per call; ops runs into one
 * group then one wait).
 *
 *   spawn_tbb [--ops 1000000] [--workers 1,2] [--reps 5] [--warmup 1]
 *             [--no-header]
 */
#include "bench_tbb.h"

static void bump(long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
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
	bench_print_header(&o);

	for (int wi = 0; wi < o.nworkers; wi++) {
		const int w = (int)o.workers[wi];
		tbb::global_control gc(tbb::global_control::max_allowed_parallelism, w);
		tbb::task_arena arena(w);
		for (int flat = 0; flat < 2; flat++) {
			long c = 0;
			int ok = 1;
			for (int k = -o.warmup; k < o.reps; k++) {
				c = 0;
				double dt = bench_tbb_time(arena, [&] {
					if (flat) {
						tbb::task_group g;
						for (long i = 0; i < ops; i++)
							g.run([&c] { bump(&c); });
						g.wait();
					} else {
						for (long i = 0; i < ops; i++) {
							tbb::task_group g;
							g.run([&c] { bump(&c); });
							g.wait();
						}
					}
				});
				if (k >= 0) {
					t[k] = dt;
					ok &= c == ops;
				}
			}
			snprintf(result, sizeof result, "%ld", c);
			bench_report(flat ? "spawn_flat" : "spawn_pair", "tbb", (unsigned)w, param, t,
			             o.reps, result, ok);
		}
	}
	return 0;
}
