/*
 * uts_omp: UTS with OpenMP tasks, the shape of uts.c (a task per child but
 * the last, which runs directly; taskwait; sum).
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
	for (int i = 0; i < nc; i++) {
		uts_child(n, i, &kids[i]);
		if (i < nc - 1) {
#pragma omp task shared(kids, counts) firstprivate(i)
			counts[i] = uts_omp(&kids[i]);
		} else {
			counts[i] = uts_omp(&kids[i]);
		}
	}
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
	static const char own[] = "[--tree T1,T3] ";
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[160], result[32], trees[64] = "T1,T3";

	bench_opts_init(&o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--tree"))
			snprintf(trees, sizeof trees, "%s", bench_optval(argc, argv, &i, own));
		else
			bench_usage_exit(argv[0], own);
	}
	bench_omp_init();
	bench_print_header(&o);

	for (char *save = NULL, *name = strtok_r(trees, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		tree = uts_find(name);
		if (!tree) {
			fprintf(stderr, "%s: unknown tree '%s' (T1, T3)\n", argv[0], name);
			return 2;
		}
		if (tree->type == UTS_BIN)
			snprintf(param, sizeof param, "tree=%s;t=0;b=%g;q=%g;m=%d;r=%d;nodes=%lu",
			         tree->name, tree->b0, tree->q, tree->m, tree->seed, tree->nodes);
		else
			snprintf(param, sizeof param, "tree=%s;t=1;a=%d;d=%d;b=%g;r=%d;nodes=%lu",
			         tree->name, tree->shape, tree->gen_mx, tree->b0, tree->seed,
			         tree->nodes);

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
