/*
 * nqueens_tbb: nqueens with oneTBB task_group, the shape of nqueens.c.
 *
 *   nqueens_tbb [--n 12] [--cutoff ROW] [--workers 1,2] [--reps 5]
 *               [--warmup 1] [--no-header]
 */
#include "bench_tbb.h"
#include "nqueens.h"

static long nq_tbb(int n, int cutoff, const struct nq_board *b)
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
	tbb::task_group g;
	for (int j = 0; j < k; j++) {
		nq_child(b, cols[j], &kids[j]);
		if (j < k - 1)
			g.run([&kids, &counts, j, n, cutoff] { counts[j] = nq_tbb(n, cutoff, &kids[j]); });
		else
			counts[j] = nq_tbb(n, cutoff, &kids[j]);
	}
	g.wait();
	for (int j = 0; j < k; j++)
		total += counts[j];
	return total;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[96], result[32];
	int n, cutoff;

	nq_parse_args(argc, argv, &o, &n, &cutoff, param, sizeof param);
	bench_print_header(&o);

	const struct nq_board empty = { 0, { 0 } };
	for (int wi = 0; wi < o.nworkers; wi++) {
		const int w = (int)o.workers[wi];
		tbb::global_control gc(tbb::global_control::max_allowed_parallelism, w);
		tbb::task_arena arena(w);
		long r = 0;
		int ok = 1;
		for (int k = 0; k < o.warmup; k++) {
			int wn = n > 8 ? n - 2 : n;
			bench_tbb_time(arena, [&] { r = nq_tbb(wn, cutoff < wn ? cutoff : wn, &empty); });
		}
		for (int k = 0; k < o.reps; k++) {
			t[k] = bench_tbb_time(arena, [&] { r = nq_tbb(n, cutoff, &empty); });
			ok &= r == nq_known[n];
		}
		snprintf(result, sizeof result, "%ld", r);
		bench_report("nqueens", "tbb", (unsigned)w, param, t, o.reps, result, ok);
	}
	return 0;
}
