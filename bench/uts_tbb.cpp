/*
 * uts_tbb: UTS with oneTBB task_group, the shape of uts.c (all children
 * hashed, a task per child but the first, last first; the first runs
 * directly; wait; sum).
 *
 *   uts_tbb [--tree T1,T3] [--workers 1,2] [--reps 5] [--warmup 1]
 *           [--no-header]
 */
#include <alloca.h>

#include "bench_tbb.h"
#include "uts_tree.h"

static const struct uts_params *tree;

static unsigned long uts_tbb(const struct uts_node *n)
{
	int nc = uts_num_children(tree, n);
	unsigned long total = 1;

	if (nc == 0)
		return 1;

	/* Stack arrays like the C versions' VLAs. */
	struct uts_node *kids = (struct uts_node *)alloca((size_t)nc * sizeof *kids);
	unsigned long *counts = (unsigned long *)alloca((size_t)nc * sizeof *counts);
	tbb::task_group g;
	for (int i = 0; i < nc; i++)
		uts_child(n, i, &kids[i]);
	for (int i = nc - 1; i > 0; i--)
		g.run([kids, counts, i] { counts[i] = uts_tbb(&kids[i]); });
	counts[0] = uts_tbb(&kids[0]);
	g.wait();
	for (int i = 0; i < nc; i++)
		total += counts[i];
	return total;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[160], result[32], trees[64];
	char *save = NULL;

	uts_parse_args(argc, argv, &o, trees, sizeof trees);
	bench_print_header(&o);

	while ((tree = uts_next_tree(trees, &save, argv[0])) != NULL) {
		uts_param(tree, param, sizeof param);

		struct uts_node root;
		uts_root(tree, &root);
		for (int wi = 0; wi < o.nworkers; wi++) {
			const int w = (int)o.workers[wi];
			tbb::global_control gc(tbb::global_control::max_allowed_parallelism, w);
			tbb::task_arena arena(w);
			unsigned long r = 0;
			int ok = 1;
			for (int k = 0; k < o.warmup; k++)
				bench_tbb_time(arena, [&] { r = uts_tbb(&root); });
			for (int k = 0; k < o.reps; k++) {
				t[k] = bench_tbb_time(arena, [&] { r = uts_tbb(&root); });
				ok &= r == tree->nodes;
			}
			snprintf(result, sizeof result, "%lu", r);
			bench_report("uts", "tbb", (unsigned)w, param, t, o.reps, result, ok);
		}
	}
	return 0;
}
