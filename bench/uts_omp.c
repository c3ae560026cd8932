/*
 * uts_omp: UTS with OpenMP tasks, the shape of uts.c (all children hashed,
 * a task per child but the first, last first; the first runs directly;
 * taskwait; sum).
 *
 *   uts_omp [--tree T1,T3] [--workers 1,2] [--reps 5] [--warmup 1]
 *           [--no-header]
 */
#include "bench_omp.h"
#include "uts_tree.h"

static const struct uts_params *tree;

static unsigned long uts_omp(const struct uts_node *n)
{
	int nc = uts_num_children(tree, n);
	unsigned long total = 1;

	if (nc == 0)
		return 1;

	struct uts_node kids[nc];
	unsigned long counts[nc];
	uts_child(n, 0, &kids[0]); /* alone: gcc -Wmaybe-uninitialized misses the loop */
	for (int i = 1; i < nc; i++)
		uts_child(n, i, &kids[i]);
	for (int i = nc - 1; i > 0; i--) {
#pragma omp task shared(kids, counts) firstprivate(i)
		counts[i] = uts_omp(&kids[i]);
	}
	counts[0] = uts_omp(&kids[0]);
#pragma omp taskwait
	for (int i = 0; i < nc; i++)
		total += counts[i];
	return total;
}

static double run(unsigned workers, const struct uts_node *root, unsigned long *r)
{
	unsigned long res = 0;
	double t0 = bench_now();
#pragma omp parallel num_threads(workers) shared(res)
	{
#pragma omp single
		res = uts_omp(root);
	}
	*r = res;
	return bench_now() - t0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[160], result[32], trees[64];
	char *save = NULL;

	uts_parse_args(argc, argv, &o, trees, sizeof trees);
	bench_omp_init();
	bench_print_header(&o);

	while ((tree = uts_next_tree(trees, &save, argv[0])) != NULL) {
		uts_param(tree, param, sizeof param);

		struct uts_node root;
		uts_root(tree, &root);
		for (int wi = 0; wi < o.nworkers; wi++) {
			unsigned long r = 0;
			int ok = 1;
			for (int w = 0; w < o.warmup; w++)
				run(o.workers[wi], &root, &r);
			for (int k = 0; k < o.reps; k++) {
				t[k] = run(o.workers[wi], &root, &r);
				ok &= r == tree->nodes;
			}
			snprintf(result, sizeof result, "%lu", r);
			bench_report("uts", BENCH_OMP_NAME, o.workers[wi], param, t, o.reps, result, ok);
		}
	}
	return 0;
}
