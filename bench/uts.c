/*
 * uts: Unbalanced Tree Search (see uts_tree.h) with a task per node: a
 * node's task computes all its children's states, spawns each child but
 * the first as a task (the last first, so that thieves take the far end
 * and the owner's syncs meet them in order), runs the first one directly,
 * then waits and sums the subtree sizes.  On one worker that visits the
 * children in the serial baseline's order, right after their hashes.
 * Prints a serial line, "ideal" lines (bench_util.h) and, per worker count,
 * a line for weft (weft_spawn into a group) and one for weft-task (typed
 * tasks: WEFT_SPAWN / WEFT_SYNC) for each tree; check is against the
 * published count.
 *
 *   uts [--tree T1,T3] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_weft.h"
#include "uts_tree.h"

struct uts_task {
	struct uts_node node;
	unsigned long count;
};

static const struct uts_params *tree;

static void uts_task(void *p)
{
	struct uts_task *t = p;
	int nc = uts_num_children(tree, &t->node);
	weft_group_t g;
	int rc;

	t->count = 1;
	if (nc == 0)
		return;

	struct uts_task kids[nc];
	weft_group_init(&g);
	for (int i = 0; i < nc; i++) {
		uts_child(&t->node, i, &kids[i].node);
		kids[i].count = 0;
	}
	for (int i = nc - 1; i > 0; i--) {
		if ((rc = weft_spawn(&g, uts_task, &kids[i])) != 0) {
			bench_fail("weft_spawn", rc);
			uts_task(&kids[i]);
		}
	}
	uts_task(&kids[0]);
	rc = weft_wait(&g);
	if (rc != 0)
		bench_fail("weft_wait", rc);
	for (int i = 0; i < nc; i++)
		t->count += kids[i].count;
}

/* The children live in the parent's frame, which outlasts their syncs. */
WEFT_TASK_1(unsigned long, utst, const struct uts_node *, node)
{
	int nc = uts_num_children(tree, node);
	unsigned long count = 1;

	if (nc == 0)
		return 1;
	struct uts_node kids[nc];
	for (int i = 0; i < nc; i++)
		uts_child(node, i, &kids[i]);
	for (int i = nc - 1; i > 0; i--)
		WEFT_SPAWN(utst, &kids[i]);
	count += WEFT_CALL(utst, &kids[0]);
	for (int i = 1; i < nc; i++)
		count += WEFT_SYNC(utst);
	return count;
}

static void utst_task(void *p)
{
	struct uts_task *t = p;
	t->count = WEFT_RUN(utst, &t->node);
}

/* The serial count from a root, for the "ideal" lines. */
static long uts_job(const void *root)
{
	return (long)uts_serial(tree, root);
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
		unsigned long r = 0;
		uts_root(tree, &root);
		for (int w = 0; w < o.warmup; w++)
			r = uts_serial(tree, &root);
		for (int k = 0; k < o.reps; k++) {
			double t0 = bench_now();
			r = uts_serial(tree, &root);
			t[k] = bench_now() - t0;
		}
		snprintf(result, sizeof result, "%lu", r);
		bench_report("uts", "serial", 1, param, t, o.reps, result, r == tree->nodes);
		bench_report_ideal(&o, "uts", param, uts_job, &root, (long)tree->nodes);

		static const struct {
			const char *name;
			weft_task_fn fn;
		} api[] = { { "weft", uts_task }, { "weft-task", utst_task } };
		for (int wi = 0; wi < o.nworkers; wi++) {
			for (size_t v = 0; v < sizeof api / sizeof api[0]; v++) {
				weft_runtime_t *rt = bench_weft_create(o.workers[wi]);
				struct uts_task task;
				int ok = 1;
				if (!rt) {
					bench_report("uts", api[v].name, o.workers[wi], param, t, 0, "error", 0);
					continue;
				}
				for (int w = 0; w < o.warmup; w++) {
					task.node = root;
					bench_weft_run(rt, api[v].fn, &task);
				}
				for (int k = 0; k < o.reps; k++) {
					task.node = root;
					task.count = 0;
					t[k] = bench_weft_run(rt, api[v].fn, &task);
					ok &= task.count == tree->nodes;
				}
				bench_weft_destroy(rt);
				snprintf(result, sizeof result, "%lu", task.count);
				bench_report("uts", api[v].name, o.workers[wi], param, t, o.reps, result,
				             ok && !bench_failed());
			}
		}
	}
	return bench_failed() ? 1 : 0;
}
