/*
 * nqueens: count the solutions of the n-queens problem with a task per
 * placement (see nqueens.h for the shape shared with the peers).  Prints a
 * serial line and, per worker count, a weft line (weft_spawn into a group)
 * and a weft-task line (typed tasks: WEFT_SPAWN / WEFT_SYNC).
 *
 *   nqueens [--n 12] [--cutoff ROW] [--workers 1,2] [--reps 5] [--warmup 1]
 *           [--no-header]
 */
#include "bench_weft.h"
#include "nqueens.h"

struct nq_task {
	struct nq_board b;
	int n, cutoff;
	long count;
};

static void nq_task(void *p)
{
	struct nq_task *t = p;
	struct nq_task kids[NQ_MAX];
	signed char cols[NQ_MAX];
	weft_group_t g;
	int k, rc;

	if (t->b.row >= t->cutoff) {
		t->count = nq_serial(t->n, &t->b);
		return;
	}
	k = nq_safe_cols(t->n, &t->b, cols);
	if (t->b.row + 1 == t->n) {
		t->count = k;
		return;
	}
	weft_group_init(&g);
	for (int j = 0; j < k; j++) {
		nq_child(&t->b, cols[j], &kids[j].b);
		kids[j].n = t->n;
		kids[j].cutoff = t->cutoff;
		kids[j].count = 0;
		if (j == k - 1 || (rc = weft_spawn(&g, nq_task, &kids[j])) != 0) {
			if (j != k - 1)
				bench_fail("weft_spawn", rc);
			nq_task(&kids[j]);
		}
	}
	rc = weft_wait(&g);
	if (rc != 0)
		bench_fail("weft_wait", rc);
	t->count = 0;
	for (int j = 0; j < k; j++)
		t->count += kids[j].count;
}

/* The children live in the parent's frame, which outlasts their syncs. */
WEFT_TASK_3(long, nqt, const struct nq_board *, b, int, n, int, cutoff)
{
	struct nq_board kids[NQ_MAX];
	signed char cols[NQ_MAX];
	long count;
	int k;

	if (b->row >= cutoff)
		return nq_serial(n, b);
	k = nq_safe_cols(n, b, cols);
	if (b->row + 1 == n || k == 0)
		return k;
	for (int j = 0; j < k; j++) {
		nq_child(b, cols[j], &kids[j]);
		if (j < k - 1)
			WEFT_SPAWN(nqt, &kids[j], n, cutoff);
	}
	count = WEFT_CALL(nqt, &kids[k - 1], n, cutoff);
	for (int j = 0; j < k - 1; j++)
		count += WEFT_SYNC(nqt);
	return count;
}

static void nqt_task(void *p)
{
	struct nq_task *t = p;
	t->count = WEFT_RUN(nqt, &t->b, t->n, t->cutoff);
}

/* The serial search from the empty board, for the "ideal" lines. */
static long nq_job(const void *n)
{
	const struct nq_board empty = { 0, { 0 } };
	return nq_serial(*(const int *)n, &empty);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[96], result[32];
	int n, cutoff;

	nq_parse_args(argc, argv, &o, &n, &cutoff, param, sizeof param);
	bench_print_header(&o);

	/* serial */
	const struct nq_board empty = { 0, { 0 } };
	long r = 0;
	for (int w = 0; w < o.warmup; w++)
		bench_keep(nq_serial(n, &empty));
	for (int k = 0; k < o.reps; k++) {
		double t0 = bench_now();
		r = nq_serial(n, &empty);
		t[k] = bench_now() - t0;
	}
	snprintf(result, sizeof result, "%ld", r);
	bench_report("nqueens", "serial", 1, param, t, o.reps, result, r == nq_known[n]);
	bench_report_ideal(&o, "nqueens", param, nq_job, &n, nq_known[n]);

	/* weft, both APIs */
	static const struct {
		const char *name;
		weft_task_fn fn;
	} api[] = { { "weft", nq_task }, { "weft-task", nqt_task } };
	for (int wi = 0; wi < o.nworkers; wi++) {
		for (size_t v = 0; v < sizeof api / sizeof api[0]; v++) {
			weft_runtime_t *rt = bench_weft_create(o.workers[wi]);
			struct nq_task root;
			int ok = 1;
			if (!rt) {
				bench_report("nqueens", api[v].name, o.workers[wi], param, t, 0, "error", 0);
				continue;
			}
			for (int w = 0; w < o.warmup; w++) {
				root.b = empty;
				root.n = n > 8 ? n - 2 : n;
				root.cutoff = cutoff < root.n ? cutoff : root.n;
				bench_weft_run(rt, api[v].fn, &root);
			}
			for (int k = 0; k < o.reps; k++) {
				root.b = empty;
				root.n = n;
				root.cutoff = cutoff;
				root.count = -1;
				t[k] = bench_weft_run(rt, api[v].fn, &root);
				ok &= root.count == nq_known[n];
			}
			bench_weft_destroy(rt);
			snprintf(result, sizeof result, "%ld", root.count);
			bench_report("nqueens", api[v].name, o.workers[wi], param, t, o.reps, result,
			             ok && !bench_failed());
		}
	}
	return bench_failed() ? 1 : 0;
}
