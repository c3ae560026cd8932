/*
 * test_forkjoin.c: weft_group / weft_spawn / weft_wait.
 *   - fib and nqueens (one spawn per call / per row choice) are correct for
 *     1, 2, 4 and 8 workers;
 *   - a 10-million task tree of nested groups runs every task exactly once;
 *   - deep recursion (fib(36), a 4000-deep spawn chain) does not overflow;
 *   - tasks spawned into a group by a stolen child (and by its children)
 *     have all returned when weft_wait returns, and their writes are
 *     visible to the waiter;
 *   - a group can be reused after weft_wait.
 */
#define _GNU_SOURCE
#include "test_util.h"

/* ------------------------------------------------------------------ */
/* fib                                                                  */

struct fib_root {
	unsigned n;
	uint64_t r;
};

static void fib_root(void *p)
{
	struct fib_root *fr = p;
	struct t_fib f = {fr->n, 0};
	t_fib_task(&f);
	fr->r = f.r;
}

static void check_fib(unsigned workers, unsigned n)
{
	weft_runtime_t *rt = t_runtime(workers);
	struct fib_root fr = {n, 0};
	t_run(rt, fib_root, &fr);
	T_ASSERT_CLEAN();
	cr_assert_eq(fr.r, t_fib_serial(n), "fib(%u) with %u workers = %llu, want %llu", n, workers,
	             (unsigned long long)fr.r, (unsigned long long)t_fib_serial(n));
	/* Again on the same runtime: it must be reusable after a run. */
	fr.r = 0;
	t_run(rt, fib_root, &fr);
	cr_assert_eq(fr.r, t_fib_serial(n));
	t_destroy(rt);
}

Test(forkjoin, fib_1_worker, .timeout = 120) { check_fib(1, 25); }
Test(forkjoin, fib_2_workers, .timeout = 120) { check_fib(2, 25); }
Test(forkjoin, fib_4_workers, .timeout = 120) { check_fib(4, 25); }
Test(forkjoin, fib_8_workers, .timeout = 120) { check_fib(8, 27); }

Test(forkjoin, fib_known_values, .timeout = 60)
{
	cr_assert_eq(t_fib_serial(25), 75025);
	weft_runtime_t *rt = t_runtime(2);
	for (unsigned n = 0; n <= 20; n++) {
		struct fib_root fr = {n, 12345};
		t_run(rt, fib_root, &fr);
		cr_assert_eq(fr.r, t_fib_serial(n), "fib(%u)", n);
	}
	struct fib_root fr = {25, 0};
	t_run(rt, fib_root, &fr);
	cr_assert_eq(fr.r, 75025);
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

/* Deep recursion on the default worker stack (8 MiB).  The issue asks that
 * fib(40) not overflow; fib(36) (48 million spawns) has the same shape and
 * a bounded run time, quick mode uses fib(30). */
Test(forkjoin, deep_fib, .timeout = 600)
{
	unsigned n = (unsigned)t_size(40, 32);
	weft_runtime_t *rt = t_runtime(2);
	struct fib_root fr = {n, 0};
	double t0 = t_now();
	t_run(rt, fib_root, &fr);
	cr_log_info("fib(%u): %.2f s", n, t_now() - t0);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(fr.r, t_fib_serial(n), "fib(%u) = %llu, want %llu", n, (unsigned long long)fr.r,
	             (unsigned long long)t_fib_serial(n));
}

/* A chain: each level spawns the next one and waits for it. */
struct chain {
	unsigned depth;
	atomic_uint *reached;
};

static void chain_task(void *p)
{
	struct chain *c = p;
	atomic_fetch_add(c->reached, 1);
	if (c->depth == 0)
		return;
	struct chain next = {c->depth - 1, c->reached};
	weft_group_t g;
	weft_group_init(&g);
	int rc = weft_spawn(&g, chain_task, &next);
	T_CHECK_EQ(rc, 0);
	rc = weft_wait(&g);
	T_CHECK_EQ(rc, 0);
}

Test(forkjoin, deep_spawn_chain, .timeout = 120)
{
	unsigned depth = (unsigned)t_size(4000, 1000);
	atomic_uint reached = 0;
	for (unsigned w = 1; w <= 2; w++) {
		weft_runtime_t *rt = t_runtime(w);
		struct chain c = {depth, &reached};
		atomic_store(&reached, 0);
		t_run(rt, chain_task, &c);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(atomic_load(&reached), depth + 1, "workers=%u", w);
	}
}

/* ------------------------------------------------------------------ */
/* nqueens: one spawn per row choice                                    */

#define NQ_MAX 12

struct nq {
	int n;
	int row;
	int8_t cols[NQ_MAX];
	uint64_t count;
};

static int nq_safe(const struct nq *q, int col)
{
	for (int r = 0; r < q->row; r++) {
		int c = q->cols[r];
		if (c == col || c - col == q->row - r || col - c == q->row - r)
			return 0;
	}
	return 1;
}

static void nq_task(void *p)
{
	struct nq *q = p;
	if (q->row == q->n) {
		q->count = 1;
		return;
	}
	struct nq kids[NQ_MAX];
	int nk = 0;
	weft_group_t g;
	weft_group_init(&g);
	for (int col = 0; col < q->n; col++) {
		if (!nq_safe(q, col))
			continue;
		struct nq *k = &kids[nk++];
		*k = *q;
		k->cols[q->row] = (int8_t)col;
		k->row = q->row + 1;
		k->count = 0;
		int rc = weft_spawn(&g, nq_task, k);
		if (rc != 0) {
			t_fail_at(__FILE__, __LINE__, "weft_spawn = %d", rc);
			nq_task(k);
		}
	}
	int rc = weft_wait(&g);
	T_CHECK_EQ(rc, 0);
	q->count = 0;
	for (int i = 0; i < nk; i++)
		q->count += kids[i].count;
}

static uint64_t nqueens(weft_runtime_t *rt, int n)
{
	struct nq q;
	memset(&q, 0, sizeof q);
	q.n = n;
	t_run(rt, nq_task, &q);
	return q.count;
}

static void check_nqueens(unsigned workers)
{
	static const uint64_t want[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724};
	weft_runtime_t *rt = t_runtime(workers);
	for (int n = 1; n <= 10; n++) {
		uint64_t got = nqueens(rt, n);
		cr_assert_eq(got, want[n], "nqueens(%d) with %u workers = %llu, want %llu", n, workers,
		             (unsigned long long)got, (unsigned long long)want[n]);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

Test(forkjoin, nqueens_1_worker, .timeout = 120) { check_nqueens(1); }
Test(forkjoin, nqueens_2_workers, .timeout = 120) { check_nqueens(2); }
Test(forkjoin, nqueens_4_workers, .timeout = 120) { check_nqueens(4); }
Test(forkjoin, nqueens_8_workers, .timeout = 120) { check_nqueens(8); }

/* ------------------------------------------------------------------ */
/* Ten million tasks in nested groups, each run exactly once            */

#define TREE_FANOUT 4
#define TREE_MAX_WORKERS 64

struct tree_ctx {
	_Atomic uint8_t *seen;
	uint64_t n;
	unsigned workers;
	struct t_padded sum[TREE_MAX_WORKERS];   /* per worker: sum of ids */
	struct t_padded count[TREE_MAX_WORKERS]; /* per worker: tasks run */
};

struct tree_node {
	struct tree_ctx *ctx;
	uint64_t lo, hi; /* this task is id lo; [lo+1, hi) is split among children */
};

static void tree_task(void *p)
{
	struct tree_node *nd = p;
	struct tree_ctx *ctx = nd->ctx;
	int w = weft_worker_index();
	if (w < 0 || (unsigned)w >= ctx->workers) {
		t_fail_at(__FILE__, __LINE__, "weft_worker_index() = %d in a task", w);
		return;
	}
	if (nd->lo >= ctx->n) {
		t_fail_at(__FILE__, __LINE__, "id %llu out of range", (unsigned long long)nd->lo);
		return;
	}
	atomic_fetch_add_explicit(&ctx->seen[nd->lo], 1, memory_order_relaxed);
	ctx->sum[w].v += nd->lo;
	ctx->count[w].v++;

	uint64_t lo = nd->lo + 1, hi = nd->hi;
	if (lo >= hi)
		return;
	struct tree_node kids[TREE_FANOUT];
	weft_group_t g;
	weft_group_init(&g);
	uint64_t span = hi - lo, step = (span + TREE_FANOUT - 1) / TREE_FANOUT;
	for (int k = 0; k < TREE_FANOUT && lo < hi; k++) {
		uint64_t e = lo + step < hi ? lo + step : hi;
		kids[k] = (struct tree_node){ctx, lo, e};
		int rc = weft_spawn(&g, tree_task, &kids[k]);
		if (rc != 0) {
			t_fail_at(__FILE__, __LINE__, "weft_spawn = %d", rc);
			tree_task(&kids[k]);
		}
		lo = e;
	}
	int rc = weft_wait(&g);
	T_CHECK_EQ(rc, 0);
}

static void run_tree(unsigned workers, uint64_t n)
{
	struct tree_ctx *ctx = calloc(1, sizeof *ctx);
	cr_assert_not_null(ctx);
	ctx->n = n;
	ctx->workers = workers;
	ctx->seen = calloc(n, 1);
	cr_assert_not_null(ctx->seen);
	weft_runtime_t *rt = t_runtime(workers);
	struct tree_node root = {ctx, 0, n};
	t_run(rt, tree_task, &root);
	/* Read the per-worker counters before destroy: weft_run returning
	 * must already order every task's writes before us. */
	uint64_t sum = 0, count = 0;
	for (unsigned i = 0; i < workers; i++) {
		sum += ctx->sum[i].v;
		count += ctx->count[i].v;
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(count, n, "%llu tasks ran, want %llu", (unsigned long long)count, (unsigned long long)n);
	cr_assert_eq(sum, n * (n - 1) / 2, "checksum %llu, want %llu", (unsigned long long)sum,
	             (unsigned long long)(n * (n - 1) / 2));
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(atomic_load_explicit(&ctx->seen[i], memory_order_relaxed), 1, "task %llu ran %u times",
		             (unsigned long long)i, (unsigned)atomic_load_explicit(&ctx->seen[i], memory_order_relaxed));
	free(ctx->seen);
	free(ctx);
}

Test(forkjoin, ten_million_tasks_exactly_once, .timeout = 600)
{
	run_tree(4, t_size(10000000, 1000000));
}

Test(forkjoin, tree_exactly_once_various_workers, .timeout = 300)
{
	uint64_t n = t_size(300000, 50000);
	run_tree(1, n);
	run_tree(2, n);
	run_tree(3, n + 17);
	run_tree(8, n);
}

/* ------------------------------------------------------------------ */
/* Spawning into the parent's group from a stolen child                 */

#define SC_GRANDKIDS 64

struct sc_ctx {
	weft_group_t *g;
	int owner;            /* worker index of the group's owner */
	atomic_int started;
	atomic_int stolen;    /* the child ran on another worker */
	atomic_long done;     /* leaf completions */
	long plain[SC_GRANDKIDS]; /* plain writes by grandchildren, read after wait */
};

struct sc_leaf {
	struct sc_ctx *c;
	int i;
	int depth;
};

static void sc_grandchild(void *p)
{
	struct sc_leaf *l = p;
	struct sc_ctx *c = l->c;
	if (l->depth == 0 && l->i % 4 == 0) {
		/* A great-grandchild into the same group, spawned by a task
		 * that is itself a remote spawn.  Its record must outlive
		 * this task: it is slot i + SC_GRANDKIDS of the child's leaf
		 * array, which the root frees only after weft_wait. */
		struct sc_leaf *gg = l + SC_GRANDKIDS;
		gg->c = c;
		gg->i = l->i;
		gg->depth = 1;
		int rc = weft_spawn(c->g, sc_grandchild, gg);
		T_CHECK_EQ(rc, 0);
	}
	if (l->i % 8 == 0)
		t_sleep_us(200); /* still running when the owner starts waiting */
	if (l->depth == 0)
		c->plain[l->i] = l->i + 1;
	atomic_fetch_add(&c->done, 1);
}

struct sc_child_arg {
	struct sc_ctx *c;
	struct sc_leaf leaves[2 * SC_GRANDKIDS];
};

static void sc_child(void *p)
{
	struct sc_child_arg *a = p;
	struct sc_ctx *c = a->c;
	if (weft_worker_index() != c->owner)
		atomic_store(&c->stolen, 1);
	atomic_store(&c->started, 1);
	for (int i = 0; i < SC_GRANDKIDS; i++) {
		a->leaves[i] = (struct sc_leaf){c, i, 0};
		int rc = weft_spawn(c->g, sc_grandchild, &a->leaves[i]);
		if (rc != 0) {
			t_fail_at(__FILE__, __LINE__, "weft_spawn into the parent's group = %d", rc);
			sc_grandchild(&a->leaves[i]);
		}
	}
	atomic_fetch_add(&c->done, 1);
}

struct sc_root {
	int iters;
	int stolen_iters;
	int spin_timeouts;
};

static void sc_root(void *p)
{
	struct sc_root *r = p;
	int spin = 1;
	for (int it = 0; it < r->iters; it++) {
		weft_group_t g;
		struct sc_ctx c;
		struct sc_child_arg *a = calloc(1, sizeof *a);
		if (!a) {
			t_fail_at(__FILE__, __LINE__, "calloc");
			return;
		}
		memset(&c, 0, sizeof c);
		weft_group_init(&g);
		c.g = &g;
		c.owner = weft_worker_index();
		a->c = &c;
		int rc = weft_spawn(&g, sc_child, a);
		T_CHECK_EQ(rc, 0);
		/* Give a thief the chance to take the child: spin (without
		 * running tasks) until it has started elsewhere. */
		if (spin) {
			double deadline = t_now() + 2.0;
			while (!atomic_load(&c.started) && t_now() < deadline)
				sched_yield();
			if (!atomic_load(&c.started)) {
				r->spin_timeouts++;
				spin = 0; /* nobody steals: stop spinning, the stolen count will fail */
			}
		}
		rc = weft_wait(&g);
		T_CHECK_EQ(rc, 0);
		/* Everything spawned into g has returned now. */
		long want = 1 + SC_GRANDKIDS + SC_GRANDKIDS / 4;
		long got = atomic_load(&c.done);
		if (got != want)
			t_fail_at(__FILE__, __LINE__, "iteration %d: weft_wait returned with %ld of %ld tasks done",
			          it, got, want);
		for (int i = 0; i < SC_GRANDKIDS; i++)
			T_CHECK_EQ(c.plain[i], i + 1);
		if (atomic_load(&c.stolen))
			r->stolen_iters++;
		free(a);
	}
}

static void check_stolen_child(unsigned workers)
{
	weft_runtime_t *rt = t_runtime(workers);
	struct sc_root r = {(int)t_size(200, 40), 0, 0};
	t_run(rt, sc_root, &r);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_gt(r.stolen_iters, 0, "the child was never stolen (%d iterations, %d spin timeouts)", r.iters,
	             r.spin_timeouts);
}

Test(forkjoin, stolen_child_spawns_into_parent_group_2w, .timeout = 300) { check_stolen_child(2); }
Test(forkjoin, stolen_child_spawns_into_parent_group_4w, .timeout = 300) { check_stolen_child(4); }

/* Many short-lived groups where the last spawn into the group comes from a
 * remote task just before that task completes: the window in which a
 * waiter that reads the counters in the wrong order sees "all done". */
struct race_ctx {
	weft_group_t *g;
	int value;        /* plain: written by this chain's leaf */
	atomic_int *runs; /* shared by the chains of one group */
};

static void race_leaf(void *p)
{
	struct race_ctx *c = p;
	c->value = 42;
	atomic_fetch_add(c->runs, 1);
}

static void race_mid(void *p)
{
	struct race_ctx *c = p;
	atomic_fetch_add(c->runs, 1);
	int rc = weft_spawn(c->g, race_leaf, c);
	T_CHECK_EQ(rc, 0);
}

static void race_child(void *p)
{
	struct race_ctx *c = p;
	atomic_fetch_add(c->runs, 1);
	int rc = weft_spawn(c->g, race_mid, c);
	T_CHECK_EQ(rc, 0);
}

static void race_root(void *p)
{
	long iters = *(long *)p;
	for (long it = 0; it < iters; it++) {
		weft_group_t g;
		atomic_int runs;
		struct race_ctx c[2] = {{&g, 0, &runs}, {&g, 0, &runs}};
		atomic_init(&runs, 0);
		weft_group_init(&g);
		int rc = weft_spawn(&g, race_child, &c[0]);
		T_CHECK_EQ(rc, 0);
		rc = weft_spawn(&g, race_child, &c[1]);
		T_CHECK_EQ(rc, 0);
		rc = weft_wait(&g);
		T_CHECK_EQ(rc, 0);
		int n = atomic_load(&runs);
		if (n != 6 || c[0].value != 42 || c[1].value != 42) {
			t_fail_at(__FILE__, __LINE__, "iteration %ld: weft_wait returned after %d of 6 tasks (values %d %d)",
			          it, n, c[0].value, c[1].value);
			return;
		}
	}
}

Test(forkjoin, remote_spawn_wait_race, .timeout = 300)
{
	long iters = (long)t_size(100000, 10000);
	for (unsigned w = 2; w <= 4; w += 2) {
		weft_runtime_t *rt = t_runtime(w);
		t_run(rt, race_root, &iters);
		t_destroy(rt);
		T_ASSERT_CLEAN();
	}
}

/* One flat group shared by many spawners: the root's group receives
 * spawns from every worker. */
struct flat_ctx {
	weft_group_t *g;
	atomic_long leaves;
	int fan;
};

static void flat_leaf(void *p) { atomic_fetch_add(&((struct flat_ctx *)p)->leaves, 1); }

static void flat_spawner(void *p)
{
	struct flat_ctx *c = p;
	for (int i = 0; i < c->fan; i++) {
		int rc = weft_spawn(c->g, flat_leaf, c);
		if (rc != 0) {
			t_fail_at(__FILE__, __LINE__, "weft_spawn = %d", rc);
			flat_leaf(c);
		}
	}
}

static void flat_root(void *p)
{
	struct flat_ctx *c = p;
	weft_group_t g;
	weft_group_init(&g);
	c->g = &g;
	for (int i = 0; i < 1000; i++) {
		int rc = weft_spawn(&g, flat_spawner, c);
		T_CHECK_EQ(rc, 0);
	}
	int rc = weft_wait(&g);
	T_CHECK_EQ(rc, 0);
	T_CHECK_EQ(atomic_load(&c->leaves), 1000L * c->fan);
	c->g = NULL;
}

Test(forkjoin, one_group_many_remote_spawners, .timeout = 300)
{
	weft_runtime_t *rt = t_runtime(4);
	struct flat_ctx c;
	atomic_init(&c.leaves, 0);
	c.fan = (int)t_size(200, 50);
	t_run(rt, flat_root, &c);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&c.leaves), 1000L * c.fan);
}

/* ------------------------------------------------------------------ */
/* Group reuse                                                          */

struct reuse_ctx {
	atomic_int count;
	int slots[100];
};

struct reuse_item {
	struct reuse_ctx *c;
	int i;
	int round;
};

static void reuse_task(void *p)
{
	struct reuse_item *it = p;
	it->c->slots[it->i] = it->round;
	atomic_fetch_add(&it->c->count, 1);
}

static void reuse_root(void *p)
{
	(void)p;
	struct reuse_ctx c;
	struct reuse_item items[100];
	weft_group_t g;

	/* Waiting on a group nothing was spawned into returns at once, also
	 * twice in a row. */
	weft_group_init(&g);
	T_CHECK_EQ(weft_wait(&g), 0);
	T_CHECK_EQ(weft_wait(&g), 0);

	/* Same group, many rounds, no re-init between them. */
	for (int round = 1; round <= 50; round++) {
		atomic_init(&c.count, 0);
		int n = 1 + (round * 37) % 100;
		for (int i = 0; i < n; i++) {
			items[i] = (struct reuse_item){&c, i, round};
			int rc = weft_spawn(&g, reuse_task, &items[i]);
			T_CHECK_EQ(rc, 0);
		}
		T_CHECK_EQ(weft_wait(&g), 0);
		T_CHECK_EQ(atomic_load(&c.count), n);
		for (int i = 0; i < n; i++)
			T_CHECK_EQ(c.slots[i], round);
	}

	/* Re-initialising a waited group is also fine. */
	for (int round = 51; round <= 60; round++) {
		weft_group_init(&g);
		atomic_init(&c.count, 0);
		for (int i = 0; i < 100; i++) {
			items[i] = (struct reuse_item){&c, i, round};
			T_CHECK_EQ(weft_spawn(&g, reuse_task, &items[i]), 0);
		}
		T_CHECK_EQ(weft_wait(&g), 0);
		T_CHECK_EQ(atomic_load(&c.count), 100);
		for (int i = 0; i < 100; i++)
			T_CHECK_EQ(c.slots[i], round);
	}
}

/* Reuse after rounds that had remote spawns (the remote counters are
 * not zero any more). */
static void reuse_remote_root(void *p)
{
	(void)p;
	weft_group_t g;
	weft_group_init(&g);
	for (int round = 0; round < 200; round++) {
		atomic_int runs;
		struct race_ctx c = {&g, 0, &runs};
		atomic_init(&runs, 0);
		T_CHECK_EQ(weft_spawn(&g, race_child, &c), 0);
		T_CHECK_EQ(weft_wait(&g), 0);
		if (atomic_load(&runs) != 3 || c.value != 42) {
			t_fail_at(__FILE__, __LINE__, "round %d: %d of 3 tasks done after weft_wait", round,
			          atomic_load(&runs));
			return;
		}
	}
}

Test(forkjoin, group_reuse_after_wait, .timeout = 120)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_runtime_t *rt = t_runtime(w);
		t_run(rt, reuse_root, NULL);
		t_run(rt, reuse_remote_root, NULL);
		t_destroy(rt);
		T_ASSERT_CLEAN();
	}
}

/* Groups spawned and waited inside submitted tasks (not weft_run), with
 * several outside roots at once. */
static void fib_submitted(void *p) { t_fib_task(p); }

Test(forkjoin, fib_in_concurrent_submitted_roots, .timeout = 120)
{
	weft_runtime_t *rt = t_runtime(4);
	struct t_fib f[16];
	weft_future_t *fut[16];
	for (int i = 0; i < 16; i++) {
		f[i] = (struct t_fib){(unsigned)(10 + i), 0};
		cr_assert_eq(weft_submit(rt, fib_submitted, &f[i], &fut[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(weft_future_wait(fut[i]), 0);
		cr_assert_eq(f[i].r, t_fib_serial(10 + (unsigned)i), "fib(%d)", 10 + i);
		weft_future_free(fut[i]);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
}

/* Remote spawns racing their own completion.  The root spawns one child
 * C, waits until a thief has taken it, then waits for the group; C spawns
 * many grandchildren into the root's group, one after the other.  The
 * root, helping in weft_wait, steals each grandchild as soon as it is
 * published and runs it.  weft_wait must still not return while C (which
 * is in the middle of its spawns) runs: a grandchild that has completed
 * may not make the group look finished before its spawn is accounted for.
 * The groups live in a large ring on the heap that outlives the runtime,
 * so a premature return is detected (tasks missing) instead of writing
 * into a dead stack frame.  Runs for a time budget, or until the first
 * failure. */
#define RS_GRANDKIDS 256
#define RS_RING 16384

struct rs_ctx {
	weft_group_t g;
	int owner;
	atomic_int stolen;                  /* C ran on another worker */
	atomic_uchar ran[RS_GRANDKIDS + 1]; /* grandchildren, then C */
};

static void rs_leaf(void *p) { atomic_store_explicit((atomic_uchar *)p, 1, memory_order_relaxed); }

static void rs_child(void *p)
{
	struct rs_ctx *c = p;
	if (weft_worker_index() != c->owner)
		atomic_store(&c->stolen, 1);
	for (int i = 0; i < RS_GRANDKIDS; i++) {
		int rc = weft_spawn(&c->g, rs_leaf, &c->ran[i]);
		if (rc != 0) {
			t_fail_at(__FILE__, __LINE__, "weft_spawn = %d", rc);
			rs_leaf(&c->ran[i]);
		}
	}
	atomic_store_explicit(&c->ran[RS_GRANDKIDS], 1, memory_order_relaxed);
}

struct rs_root {
	struct rs_ctx *ring; /* RS_RING contexts, reused round-robin */
	double budget_s;
	long iters;          /* done */
	long stolen;         /* iterations where a thief ran C */
	long early;          /* iterations where weft_wait returned too soon */
	int missing;         /* tasks not yet run then */
};

static void rs_root(void *p)
{
	struct rs_root *r = p;
	double end = t_now() + r->budget_s;
	while (r->early == 0 && t_now() < end) {
		struct rs_ctx *c = &r->ring[r->iters++ % RS_RING];
		memset(c, 0, sizeof *c);
		c->owner = weft_worker_index();
		weft_group_init(&c->g);
		T_CHECK_EQ(weft_spawn(&c->g, rs_child, c), 0);
		/* Let a thief take C: run by the root itself, its spawns would
		 * all be the owner's own, with nothing to race. */
		double deadline = t_now() + 0.01;
		while (!atomic_load(&c->stolen) && t_now() < deadline)
			;
		T_CHECK_EQ(weft_wait(&c->g), 0);
		if (atomic_load(&c->stolen))
			r->stolen++;
		int missing = 0;
		for (int i = 0; i <= RS_GRANDKIDS; i++)
			missing += !atomic_load_explicit(&c->ran[i], memory_order_relaxed);
		if (missing) {
			r->early++;
			r->missing = missing;
		}
	}
}

Test(forkjoin, remote_spawn_vs_completion_race, .timeout = 300)
{
	struct rs_root r;
	memset(&r, 0, sizeof r);
	r.budget_s = (double)t_size(15, 8);
	r.ring = calloc(RS_RING, sizeof *r.ring);
	cr_assert_not_null(r.ring);
	weft_runtime_t *rt = t_runtime(2);
	t_run(rt, rs_root, &r);
	t_destroy(rt);
	free(r.ring);
	T_ASSERT_CLEAN();
	cr_log_info("remote spawn race: %ld iterations, C stolen in %ld", r.iters, r.stolen);
	cr_assert_gt(r.stolen, 0, "the child was never stolen");
	cr_assert_eq(r.early, 0,
	             "weft_wait returned while tasks of its group had not run (iteration %ld: %d of %d "
	             "tasks missing)",
	             r.iters, r.missing, RS_GRANDKIDS + 1);
}
