/*
 * pfor_omp: the loops of pfor.c with OpenMP worksharing.  The range is cut
 * into chunks of `grain` iterations (grain 0: about 8 chunks per thread,
 * like weft's default) handed out by `omp for schedule(static)`, each chunk
 * one call of the shared body; the passes of a memory-bound repetition run
 * inside one parallel region.
 *
 *   pfor_omp [--kind mem,compute] [--n N] [--passes 5] [--iters 64]
 *            [--grain 0] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_omp.h"
#include "pfor_kernels.h"

static double run(unsigned workers, struct pfor_ctx *x, void (*body)(size_t, size_t, void *),
                  int loops, size_t grain)
{
	const size_t n = x->n;
	const size_t chunk = grain ? grain : (n + 8 * workers - 1) / (8 * workers);
	const long nchunks = (long)((n + chunk - 1) / chunk);
	double t0 = bench_now();
#pragma omp parallel num_threads(workers)
	for (int l = 0; l < loops; l++) {
#pragma omp for schedule(static)
		for (long j = 0; j < nchunks; j++) {
			size_t lo = (size_t)j * chunk, hi = lo + chunk < n ? lo + chunk : n;
			body(lo, hi, x);
		}
	}
	return bench_now() - t0;
}

static void run_kind(const struct bench_opts *o, int mem, size_t n, int passes, int iters,
                     size_t grain)
{
	const char *name = mem ? "pfor_mem" : "pfor_compute";
	struct pfor_ctx x;
	double t[BENCH_MAX_REPS];
	char param[128], result[32];
	const int loops = mem ? passes : 1;

	if (mem)
		snprintf(param, sizeof param, "n=%zu;passes=%d;bytes=%zu;grain=%zu", n, passes,
		         (size_t)24 * n * (size_t)passes, grain);
	else
		snprintf(param, sizeof param, "n=%zu;iters=%d;grain=%zu", n, iters, grain);
	if (pfor_setup(&x, mem, n, iters) != 0) {
		fprintf(stderr, "pfor_omp: out of memory for n=%zu\n", n);
		pfor_free(&x);
		return;
	}
	for (int wi = 0; wi < o->nworkers; wi++) {
		int ok = 1;
		for (int k = -o->warmup; k < o->reps; k++) {
			pfor_reset(&x);
			double dt = run(o->workers[wi], &x, mem ? pfor_mem_body : pfor_compute_body,
			                loops, grain);
			if (k >= 0) {
				t[k] = dt;
				ok &= pfor_check(&x, loops);
			}
		}
		snprintf(result, sizeof result, "%016llx", pfor_checksum(&x));
		bench_report(name, BENCH_OMP_NAME, o->workers[wi], param, t, o->reps, result, ok);
	}
	pfor_free(&x);
}

int main(int argc, char **argv)
{
	return pfor_main(argc, argv, run_kind, bench_omp_init);
}
