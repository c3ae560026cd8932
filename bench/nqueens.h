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

#endif /* BENCH_NQUEENS_H */
