/*
 * uts_tbb: UTS with oneTBB task_group, the shape of uts.c (a task per
 * child but the last, which runs directly; wait; sum).
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
	for (int i = 0; i < nc; i++) {
		uts_child(n, i, &kids[i]);
		if (i < nc - 1)
			g.run([kids, counts, i] { counts[i] = uts_tbb(&kids[i]); });
		else
			counts[i] = uts_tbb(&kids[i]);
	}
	g.wait();
	for (int i = 0; i < nc; i++)
		total += counts[i];
	return total;
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
	bench_print_header(&o);

	char *save = NULL;
	for (char *name = strtok_r(trees, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
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
