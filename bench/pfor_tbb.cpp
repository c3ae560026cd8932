/*
 * pfor_tbb: the loops of pfor.c with tbb::parallel_for over a
 * blocked_range (default auto_partitioner; --grain sets the range's grain
 * size), each subrange one call of the shared body.
 *
 *   pfor_tbb [--kind mem,compute] [--n N] [--passes 5] [--iters 64]
 *            [--grain 0] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "bench_tbb.h"
#include "pfor_kernels.h"

static void run_kind(const struct bench_opts *o, int mem, size_t n, int passes, int iters,
                     size_t grain)
{
	const char *name = mem ? "pfor_mem" : "pfor_compute";
	struct pfor_ctx x;
	double t[BENCH_MAX_REPS];
	char param[128], result[32];
	const int loops = mem ? passes : 1;
	void (*body)(size_t, size_t, void *) = mem ? pfor_mem_body : pfor_compute_body;

	if (mem)
		snprintf(param, sizeof param, "n=%zu;passes=%d;bytes=%zu;grain=%zu", n, passes,
		         (size_t)24 * n * (size_t)passes, grain);
	else
		snprintf(param, sizeof param, "n=%zu;iters=%d;grain=%zu", n, iters, grain);
	if (pfor_setup(&x, mem, n, iters) != 0) {
		fprintf(stderr, "pfor_tbb: out of memory for n=%zu\n", n);
		pfor_free(&x);
		return;
	}
	for (int wi = 0; wi < o->nworkers; wi++) {
		const int w = (int)o->workers[wi];
		tbb::global_control gc(tbb::global_control::max_allowed_parallelism, w);
		tbb::task_arena arena(w);
		int ok = 1;
		for (int k = -o->warmup; k < o->reps; k++) {
			pfor_reset(&x);
			double dt = bench_tbb_time(arena, [&] {
				for (int l = 0; l < loops; l++)
					tbb::parallel_for(tbb::blocked_range<size_t>(0, n, grain ? grain : 1),
					                  [&](const tbb::blocked_range<size_t> &r) {
						                  body(r.begin(), r.end(), &x);
					                  });
			});
			if (k >= 0) {
				t[k] = dt;
				ok &= pfor_check(&x, loops);
			}
		}
		snprintf(result, sizeof result, "%016llx", pfor_checksum(&x));
		bench_report(name, "tbb", (unsigned)w, param, t, o->reps, result, ok);
	}
	pfor_free(&x);
}

int main(int argc, char **argv)
{
	return pfor_main(argc, argv, run_kind, NULL);
}
