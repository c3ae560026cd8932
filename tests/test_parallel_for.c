/*
 * test_parallel_for.c: weft_parallel_for covers [begin, end) exactly once
 * with pieces that respect the grain, for many ranges (including ones at
 * the top of size_t), grains and worker counts; sums a 10-million element
 * array; nests inside its own body and inside spawned/submitted tasks.
 */
#define _GNU_SOURCE
#include "test_util.h"

/* ------------------------------------------------------------------ */
/* Coverage                                                             */

struct cover {
	size_t begin, end, grain;
	_Atomic uint8_t *hits; /* index i - begin */
	atomic_long calls;
	int rc;
};

static void cover_body(size_t lo, size_t hi, void *ctx)
{
	struct cover *c = ctx;
	atomic_fetch_add(&c->calls, 1);
	if (!(lo < hi && lo >= c->begin && hi <= c->end)) {
		t_fail_at(__FILE__, __LINE__, "body(%zu, %zu) for range [%zu, %zu)", lo, hi, c->begin, c->end);
		return;
	}
	if (c->grain > 0 && hi - lo > c->grain)
		t_fail_at(__FILE__, __LINE__, "body(%zu, %zu): %zu iterations, grain %zu", lo, hi, hi - lo, c->grain);
	if (weft_worker_index() < 0)
		t_fail_at(__FILE__, __LINE__, "body called off the workers");
	for (size_t i = lo; i < hi; i++)
		atomic_fetch_add_explicit(&c->hits[i - c->begin], 1, memory_order_relaxed);
}

static void cover_root(void *p)
{
	struct cover *c = p;
	c->rc = weft_parallel_for(c->begin, c->end, c->grain, cover_body, c);
}

static long check_cover(weft_runtime_t *rt, size_t begin, size_t end, size_t grain)
{
	struct cover c;
	c.begin = begin;
	c.end = end;
	c.grain = grain;
	c.rc = 1;
	atomic_init(&c.calls, 0);
	c.hits = calloc(end - begin + 1, 1);
	cr_assert_not_null(c.hits);
	t_run(rt, cover_root, &c);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.rc, 0, "weft_parallel_for(%zu, %zu, %zu) = %d", begin, end, grain, c.rc);
	for (size_t i = 0; i < end - begin; i++)
		cr_assert_eq(atomic_load_explicit(&c.hits[i], memory_order_relaxed), 1,
		             "[%zu, %zu) grain %zu: index %zu covered %u times", begin, end, grain, begin + i,
		             (unsigned)atomic_load_explicit(&c.hits[i], memory_order_relaxed));
	long calls = atomic_load(&c.calls);
	if (end > begin) {
		cr_assert_geq(calls, 1);
		if (grain > 0)
			cr_assert_geq(calls, (long)((end - begin) / grain + ((end - begin) % grain != 0)),
			              "%ld calls cannot cover %zu iterations at grain %zu", calls, end - begin, grain);
	} else {
		cr_assert_eq(calls, 0, "empty range: body called %ld times", calls);
	}
	free(c.hits);
	return calls;
}

struct range_case {
	size_t begin, end, grain;
};

static void check_all_ranges(unsigned workers)
{
	const size_t top = SIZE_MAX;
	const struct range_case cases[] = {
		{0, 0, 0},
		{0, 0, 1},
		{7, 7, 3},
		{0, 1, 0},
		{0, 1, 1},
		{0, 1, 100},
		{0, 2, 1},
		{0, 3, 2},
		{0, 1000, 0},
		{0, 1000, 1},
		{0, 1000, 7},
		{0, 1000, 999},
		{0, 1000, 1000},
		{0, 1000, 1001},
		{0, 1000, 5000},
		{0, 1000, SIZE_MAX},
		{123, 100123, 0},
		{123, 100123, 1},
		{123, 100123, 64},
		{99, 100, 1},
		{1000003, 1000003 + 65537, 0},
		{1000003, 1000003 + 65537, 1000},
		/* At the top of size_t: (lo + hi) / 2 overflows here. */
		{top - 10000, top, 0},
		{top - 10000, top, 1},
		{top - 10000, top, 3},
		{top - 1, top, 1},
		{top / 2 - 5000, top / 2 + 5000, 0},
		{top / 2 - 5000, top / 2 + 5000, 17},
	};
	weft_runtime_t *rt = t_runtime(workers);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_cover(rt, cases[i].begin, cases[i].end, cases[i].grain);
	t_destroy(rt);
}

Test(parallel_for, every_index_once_1_worker, .timeout = 120) { check_all_ranges(1); }
Test(parallel_for, every_index_once_2_workers, .timeout = 120) { check_all_ranges(2); }
Test(parallel_for, every_index_once_4_workers, .timeout = 120) { check_all_ranges(4); }

/* grain 0: "about 8 pieces per worker". */
Test(parallel_for, auto_grain_splits_per_worker, .timeout = 60)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_runtime_t *rt = t_runtime(w);
		long calls = check_cover(rt, 0, 1u << 20, 0);
		cr_assert(calls >= (long)w && calls <= 64L * w,
		          "grain 0 with %u workers: %ld pieces for 2^20 iterations (want about %u)", w, calls, 8 * w);
		t_destroy(rt);
	}
}

/* ------------------------------------------------------------------ */
/* Sum of a 10-million element array                                    */

struct sum_ctx {
	const uint64_t *a;
	uint64_t *out;
	atomic_ullong total;
	int rc;
	size_t n, grain;
};

static void sum_body(size_t lo, size_t hi, void *ctx)
{
	struct sum_ctx *s = ctx;
	uint64_t acc = 0;
	for (size_t i = lo; i < hi; i++) {
		acc += s->a[i];
		s->out[i] = s->a[i] * 3; /* plain writes, read after return */
	}
	atomic_fetch_add_explicit(&s->total, acc, memory_order_relaxed);
}

static void sum_root(void *p)
{
	struct sum_ctx *s = p;
	s->rc = weft_parallel_for(0, s->n, s->grain, sum_body, s);
}

Test(parallel_for, sum_ten_million, .timeout = 300)
{
	size_t n = t_size(10000000, 1000000);
	uint64_t *a = malloc(n * sizeof *a), *out = calloc(n, sizeof *out);
	cr_assert(a && out);
	uint64_t seed = 12345, want = 0;
	for (size_t i = 0; i < n; i++) {
		a[i] = t_rand(&seed) >> 20;
		want += a[i];
	}
	for (unsigned w = 1; w <= 4; w *= 2) {
		weft_runtime_t *rt = t_runtime(w);
		struct sum_ctx s = {a, out, 0, 1, n, 0};
		t_run(rt, sum_root, &s);
		cr_assert_eq(s.rc, 0);
		cr_assert_eq(atomic_load(&s.total), want, "workers=%u: sum %llu, want %llu", w,
		             (unsigned long long)atomic_load(&s.total), (unsigned long long)want);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(out[i], a[i] * 3, "workers=%u: out[%zu]", w, i);
		memset(out, 0, n * sizeof *out);
		t_destroy(rt);
	}
	/* Also with a fixed grain. */
	weft_runtime_t *rt = t_runtime(2);
	struct sum_ctx s = {a, out, 0, 1, n, 1000};
	t_run(rt, sum_root, &s);
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(atomic_load(&s.total), want);
	t_destroy(rt);
	free(a);
	free(out);
}

/* The n(n-1)/2 checksum with per-worker partial sums and a fixed grain. */
struct idx_sum {
	struct t_padded part[64];
	unsigned workers;
};

static void idx_body(size_t lo, size_t hi, void *ctx)
{
	struct idx_sum *s = ctx;
	int w = weft_worker_index();
	if (w < 0 || (unsigned)w >= s->workers) {
		t_fail_at(__FILE__, __LINE__, "weft_worker_index() = %d", w);
		return;
	}
	for (size_t i = lo; i < hi; i++)
		s->part[w].v += i;
}

struct idx_root_arg {
	struct idx_sum *s;
	size_t n, grain;
	int rc;
};

static void idx_root(void *p)
{
	struct idx_root_arg *r = p;
	r->rc = weft_parallel_for(0, r->n, r->grain, idx_body, r->s);
}

Test(parallel_for, index_checksum_fixed_grain, .timeout = 120)
{
	size_t n = t_size(10000000, 1000000);
	for (unsigned w = 2; w <= 8; w *= 2) {
		struct idx_sum *s = calloc(1, sizeof *s);
		cr_assert_not_null(s);
		s->workers = w;
		weft_runtime_t *rt = t_runtime(w);
		struct idx_root_arg r = {s, n, 4096, 1};
		t_run(rt, idx_root, &r);
		t_destroy(rt);
		T_ASSERT_CLEAN();
		cr_assert_eq(r.rc, 0);
		uint64_t sum = 0;
		for (unsigned i = 0; i < w; i++)
			sum += s->part[i].v;
		cr_assert_eq(sum, (uint64_t)n * (n - 1) / 2, "workers=%u", w);
		free(s);
	}
}

/* ------------------------------------------------------------------ */
/* Nesting                                                              */

#define OUTER 64
#define INNER 1000

struct nest {
	_Atomic uint8_t hits[OUTER][INNER];
	atomic_int inner_rc_bad;
	int outer_rc;
	size_t inner_grain;
};

struct row {
	struct nest *n;
	size_t i;
};

static void inner_body(size_t lo, size_t hi, void *ctx)
{
	struct row *r = ctx;
	for (size_t j = lo; j < hi; j++) {
		if (j >= INNER) {
			t_fail_at(__FILE__, __LINE__, "inner index %zu", j);
			return;
		}
		atomic_fetch_add_explicit(&r->n->hits[r->i][j], 1, memory_order_relaxed);
	}
}

static void outer_body(size_t lo, size_t hi, void *ctx)
{
	struct nest *n = ctx;
	for (size_t i = lo; i < hi; i++) {
		if (i >= OUTER) {
			t_fail_at(__FILE__, __LINE__, "outer index %zu", i);
			return;
		}
		struct row r = {n, i};
		int rc = weft_parallel_for(0, INNER, n->inner_grain, inner_body, &r);
		if (rc != 0)
			t_fail_at(__FILE__, __LINE__, "nested weft_parallel_for = %d", rc);
	}
}

static void nest_root(void *p)
{
	struct nest *n = p;
	n->outer_rc = weft_parallel_for(0, OUTER, 1, outer_body, n);
}

static void check_nest(struct nest *n, unsigned w)
{
	for (size_t i = 0; i < OUTER; i++)
		for (size_t j = 0; j < INNER; j++)
			cr_assert_eq(atomic_load_explicit(&n->hits[i][j], memory_order_relaxed), 1,
			             "workers=%u: (%zu, %zu) covered %u times", w, i, j,
			             (unsigned)atomic_load_explicit(&n->hits[i][j], memory_order_relaxed));
}

Test(parallel_for, nested_in_body, .timeout = 120)
{
	for (unsigned w = 1; w <= 4; w *= 2) {
		for (size_t grain = 0; grain <= 16; grain += 16) {
			struct nest *n = calloc(1, sizeof *n);
			cr_assert_not_null(n);
			n->inner_grain = grain;
			n->outer_rc = 1;
			weft_runtime_t *rt = t_runtime(w);
			t_run(rt, nest_root, n);
			t_destroy(rt);
			T_ASSERT_CLEAN();
			cr_assert_eq(n->outer_rc, 0);
			check_nest(n, w);
			free(n);
		}
	}
}

/* parallel_for inside spawned tasks and submitted tasks, several at once. */
static void spawned_pf(void *p) { nest_root(p); }

static void spawn_many_pf(void *p)
{
	struct nest **ns = p;
	weft_group_t g;
	weft_group_init(&g);
	for (int k = 0; k < 4; k++)
		T_CHECK_EQ(weft_spawn(&g, spawned_pf, ns[k]), 0);
	T_CHECK_EQ(weft_wait(&g), 0);
}

Test(parallel_for, inside_spawned_and_submitted_tasks, .timeout = 120)
{
	weft_runtime_t *rt = t_runtime(4);
	struct nest *ns[8];
	for (int k = 0; k < 8; k++) {
		ns[k] = calloc(1, sizeof *ns[k]);
		cr_assert_not_null(ns[k]);
		ns[k]->inner_grain = (size_t)k * 8;
		ns[k]->outer_rc = 1;
	}
	/* Four from spawned tasks in one weft_run... */
	weft_future_t *f[4];
	/* ...and four from submitted tasks at the same time. */
	for (int k = 0; k < 4; k++)
		cr_assert_eq(weft_submit(rt, nest_root, ns[4 + k], &f[k]), 0);
	t_run(rt, spawn_many_pf, ns);
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(weft_future_wait(f[k]), 0);
		weft_future_free(f[k]);
	}
	t_destroy(rt);
	T_ASSERT_CLEAN();
	for (int k = 0; k < 8; k++) {
		cr_assert_eq(ns[k]->outer_rc, 0);
		check_nest(ns[k], 4);
		free(ns[k]);
	}
}

/* A body that forks and joins on its own. */
struct fj_body {
	atomic_ullong sum;
};

static void fj_body(size_t lo, size_t hi, void *ctx)
{
	struct fj_body *b = ctx;
	for (size_t i = lo; i < hi; i++) {
		struct t_fib f = {(unsigned)(i % 12), 0};
		weft_group_t g;
		weft_group_init(&g);
		T_CHECK_EQ(weft_spawn(&g, t_fib_task, &f), 0);
		T_CHECK_EQ(weft_wait(&g), 0);
		atomic_fetch_add(&b->sum, f.r);
	}
}

static void fj_root(void *p)
{
	T_CHECK_EQ(weft_parallel_for(0, 1200, 5, fj_body, p), 0);
}

Test(parallel_for, body_spawns_its_own_groups, .timeout = 60)
{
	weft_runtime_t *rt = t_runtime(2);
	struct fj_body b;
	atomic_init(&b.sum, 0);
	t_run(rt, fj_root, &b);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	uint64_t want = 0;
	for (unsigned i = 0; i < 1200; i++)
		want += t_fib_serial(i % 12);
	cr_assert_eq(atomic_load(&b.sum), want);
}
