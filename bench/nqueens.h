/*
 * nqueens.h: shared by nqueens*.c/cpp.  Count the placements of n
 * non-attacking queens, one row at a time.  Every version (serial, weft,
 * OpenMP, TBB) has the same shape: at row `row` collect the safe columns,
 * then for each one copy the board into a child with that queen added and
 * count the child's subtree; the parallel versions run every child but the
 * last as a task and count the last one directly (and wait).  A child at
 * the last row is a solution and is counted without a task.  Below row
 * `cutoff` (default n: none) the serial function takes over.
 */
#ifndef BENCH_NQUEENS_H
#define BENCH_NQUEENS_H

#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include <string.h>

#define NQ_MAX 16

struct nq_board {
	int row;                  /* queens placed: rows 0..row-1 */
	signed char col[NQ_MAX];  /* column of the queen of each placed row */
};

static const long nq_known[NQ_MAX + 1] = {
	1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596,
	2279184, 14772512,
};

/* The columns where a queen at b->row is safe; returns how many. */
static inline int nq_safe_cols(int n, const struct nq_board *b, signed char *cols)
{
	int k = 0;
	for (int c = 0; c < n; c++) {
		int ok = 1;
		for (int i = 0; i < b->row; i++) {
			int d = b->col[i] - c;
			int h = b->row - i;
			if (d == 0 || d == h || d == -h) {
				ok = 0;
				break;
			}
		}
		if (ok)
			cols[k++] = (signed char)c;
	}
	return k;
}

static inline void nq_child(const struct nq_board *b, int c, struct nq_board *child)
{
	memcpy(child->col, b->col, (size_t)b->row);
	child->col[b->row] = (signed char)c;
	child->row = b->row + 1;
}

/* The serial elision: the same recursion, every child called directly. */
static long nq_serial(int n, const struct nq_board *b)
{
	signed char cols[NQ_MAX];
	struct nq_board child;
	long count = 0;
	int k = nq_safe_cols(n, b, cols);

	if (b->row + 1 == n)
		return k;
	for (int j = 0; j < k; j++) {
		nq_child(b, cols[j], &child);
		count += nq_serial(n, &child);
	}
	return count;
}

/* The command line every nqueens program shares: common options plus
 * --n and --cutoff (see above; default n, no cutoff).  Fills the CSV
 * param string. */
static inline void nq_parse_args(int argc, char **argv, struct bench_opts *o, int *n, int *cutoff,
                                 char *param, size_t plen)
{
	static const char own[] = "[--n N] [--cutoff ROW] ";

	*n = 12;
	*cutoff = -1;
	bench_opts_init(o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--n"))
			*n = (int)bench_optlong(argc, argv, &i, own, 1, NQ_MAX);
		else if (!strcmp(argv[i], "--cutoff"))
			*cutoff = (int)bench_optlong(argc, argv, &i, own, 0, NQ_MAX);
		else
			bench_usage_exit(argv[0], own);
	}
	if (*cutoff < 0 || *cutoff > *n)
		*cutoff = *n;
	if (*cutoff == *n)
		snprintf(param, plen, "n=%d", *n);
	else
		snprintf(param, plen, "n=%d;cutoff=%d", *n, *cutoff);
}

#endif /* BENCH_NQUEENS_H */
