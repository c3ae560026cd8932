/*
 * pfor: weft_parallel_for over a memory-bound loop (triad) and a
 * compute-bound loop (see pfor_kernels.h), against the same body called
 * once over the whole range.  A memory-bound repetition is `passes` loops
 * (bytes moved: 24 * n * passes); a compute-bound one is one loop.
 *
 *   pfor [--kind mem,compute] [--n N] [--passes 5] [--iters 64] [--grain 0]
 *        [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 *   default n: 2^23 (mem), 2^20 (compute); grain 0 = weft's default.
 */
#include "bench_weft.h"
#include "pfor_kernels.h"

struct pfor_job {
	struct pfor_ctx *x;
	weft_range_fn body;
	int loops;
	size_t grain;
};

static void pfor_root(void *p)
{
	struct pfor_job *j = p;
	for (int k = 0; k < j->loops; k++) {
		int rc = weft_parallel_for(0, j->x->n, j->grain, j->body, j->x);
		if (rc != 0)
			bench_fail("weft_parallel_for", rc);
	}
}

static void run_kind(const struct bench_opts *o, int mem, size_t n, int passes, int iters,
                     size_t grain)
{
	const char *name = mem ? "pfor_mem" : "pfor_compute";
	struct pfor_ctx x;
	struct pfor_job job;
	double t[BENCH_MAX_REPS];
	char param[128], result[32];
	int ok = 1;

	if (mem)
		snprintf(param, sizeof param, "n=%zu;passes=%d;bytes=%zu;grain=%zu", n, passes,
		         (size_t)24 * n * (size_t)passes, grain);
	else
		snprintf(param, sizeof param, "n=%zu;iters=%d;grain=%zu", n, iters, grain);
	if (pfor_setup(&x, mem, n, iters) != 0) {
		fprintf(stderr, "pfor: out of memory for n=%zu\n", n);
		bench_report(name, "serial", 1, param, t, 0, "error", 0);
		pfor_free(&x);
		return;
	}
	job.x = &x;
	job.body = mem ? pfor_mem_body : pfor_compute_body;
	job.loops = mem ? passes : 1;
	job.grain = grain;

	/* serial: the body over the whole range */
	for (int k = -o->warmup; k < o->reps; k++) {
		pfor_reset(&x);
		double t0 = bench_now();
		for (int l = 0; l < job.loops; l++)
			job.body(0, n, &x);
		double dt = bench_now() - t0;
		if (k >= 0) {
			t[k] = dt;
			ok &= pfor_check(&x, job.loops);
		}
	}
	snprintf(result, sizeof result, "%016llx", pfor_checksum(&x));
	bench_report(name, "serial", 1, param, t, o->reps, result, ok);

	for (int wi = 0; wi < o->nworkers; wi++) {
		weft_runtime_t *rt = bench_weft_create(o->workers[wi]);
		if (!rt) {
			bench_report(name, "weft", o->workers[wi], param, t, 0, "error", 0);
			continue;
		}
		ok = 1;
		for (int k = -o->warmup; k < o->reps; k++) {
			pfor_reset(&x);
			double dt = bench_weft_run(rt, pfor_root, &job);
			if (k >= 0) {
				t[k] = dt;
				ok &= pfor_check(&x, job.loops);
			}
		}
		bench_weft_destroy(rt);
		snprintf(result, sizeof result, "%016llx", pfor_checksum(&x));
		bench_report(name, "weft", o->workers[wi], param, t, o->reps, result,
		             ok && !bench_failed());
	}
	pfor_free(&x);
}

int main(int argc, char **argv)
{
	return pfor_main(argc, argv, run_kind, NULL);
}
