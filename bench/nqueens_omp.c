/*
 * nqueens_omp: nqueens with OpenMP tasks, the shape of nqueens.c.
 *
 *   nqueens_omp [--n 12] [--cutoff ROW] [--workers 1,2] [--reps 5]
 *               [--warmup 1] [--no-header]
 */
#include "bench_omp.h"
#include "nqueens.h"

static long nq_omp(int n, int cutoff, const struct nq_board *b)
{
	struct nq_board kids[NQ_MAX];
	long counts[NQ_MAX];
	signed char cols[NQ_MAX];
	long total = 0;
	int k;

	if (b->row >= cutoff)
		return nq_serial(n, b);
	k = nq_safe_cols(n, b, cols);
	if (b->row + 1 == n)
		return k;
	for (int j = 0; j < k; j++) {
		nq_child(b, cols[j], &kids[j]);
		if (j < k - 1) {
#pragma omp task shared(kids, counts) firstprivate(j, n, cutoff)
			counts[j] = nq_omp(n, cutoff, &kids[j]);
		} else {
			counts[j] = nq_omp(n, cutoff, &kids[j]);
		}
	}
#pragma omp taskwait
	for (int j = 0; j < k; j++)
		total += counts[j];
	return total;
}

static double run(unsigned workers, int n, int cutoff, long *r)
{
	const struct nq_board empty = { 0, { 0 } };
	long res = 0;
	double t0 = bench_now();
#pragma omp parallel num_threads(workers) shared(res)
	{
#pragma omp single
		res = nq_omp(n, cutoff, &empty);
	}
	*r = res;
	return bench_now() - t0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[96], result[32];
	int n, cutoff;

	nq_parse_args(argc, argv, &o, &n, &cutoff, param, sizeof param);
	bench_omp_init();
	bench_print_header(&o);

	for (int wi = 0; wi < o.nworkers; wi++) {
		long r = 0;
		int ok = 1;
		for (int w = 0; w < o.warmup; w++) {
			int wn = n > 8 ? n - 2 : n;
			run(o.workers[wi], wn, cutoff < wn ? cutoff : wn, &r);
		}
		for (int k = 0; k < o.reps; k++) {
			t[k] = run(o.workers[wi], n, cutoff, &r);
			ok &= r == nq_known[n];
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report("nqueens", BENCH_OMP_NAME, o.workers[wi], param, t, o.reps, result, ok);
	}
	return 0;
}
