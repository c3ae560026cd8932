/*
 * pfor_kernels.h: the two parallel_for loop bodies, shared by pfor*.c/cpp.
 *
 *   mem      STREAM-style triad a[i] = b[i] + 3 * c[i] over three arrays of
 *            n doubles (24 bytes of traffic per iteration, far beyond the
 *            caches at the default size), `passes` loops per repetition.
 *   compute  out[i] = mix(i): `iters` rounds of a 64-bit multiply-xorshift
 *            chain per element, no memory traffic to speak of.
 *
 * Every body call adds its range length to `covered`; the check is that
 * the ranges covered the index space exactly once per loop and that every
 * element holds its serial value.
 */
#ifndef BENCH_PFOR_KERNELS_H
#define BENCH_PFOR_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define PFOR_TRIAD_SCALE 3.0

struct pfor_ctx {
	size_t n;
	int iters;
	double *a, *b, *c;
	uint64_t *out;
	uint64_t covered; /* atomic */
};

static inline void pfor_mem_body(size_t lo, size_t hi, void *p)
{
	struct pfor_ctx *x = (struct pfor_ctx *)p;
	double *a = x->a;
	const double *b = x->b, *c = x->c;
	for (size_t i = lo; i < hi; i++)
		a[i] = b[i] + PFOR_TRIAD_SCALE * c[i];
	__atomic_fetch_add(&x->covered, (uint64_t)(hi - lo), __ATOMIC_RELAXED);
}

static inline uint64_t pfor_mix(uint64_t v, int iters)
{
	for (int k = 0; k < iters; k++) {
		v ^= v >> 31;
		v *= 0x9e3779b97f4a7c15ULL;
		v ^= v >> 29;
	}
	return v | 1; /* never 0: 0 marks "not written" */
}

static inline void pfor_compute_body(size_t lo, size_t hi, void *p)
{
	struct pfor_ctx *x = (struct pfor_ctx *)p;
	for (size_t i = lo; i < hi; i++)
		x->out[i] = pfor_mix((uint64_t)i, x->iters);
	__atomic_fetch_add(&x->covered, (uint64_t)(hi - lo), __ATOMIC_RELAXED);
}

/* Allocate and first-touch (serially) what `kind` needs; 0 or -1. */
static inline int pfor_setup(struct pfor_ctx *x, int mem, size_t n, int iters)
{
	memset(x, 0, sizeof *x);
	x->n = n;
	x->iters = iters;
	if (mem) {
		x->a = (double *)malloc(n * sizeof(double));
		x->b = (double *)malloc(n * sizeof(double));
		x->c = (double *)malloc(n * sizeof(double));
		if (!x->a || !x->b || !x->c)
			return -1;
		for (size_t i = 0; i < n; i++) {
			x->a[i] = 0.0;
			x->b[i] = (double)i * 0.5;
			x->c[i] = 1.0 / (double)(i + 1);
		}
	} else {
		x->out = (uint64_t *)malloc(n * sizeof(uint64_t));
		if (!x->out)
			return -1;
	}
	return 0;
}

/* Clear the outputs before a repetition (untimed). */
static inline void pfor_reset(struct pfor_ctx *x)
{
	if (x->a)
		memset(x->a, 0, x->n * sizeof(double));
	if (x->out)
		memset(x->out, 0, x->n * sizeof(uint64_t));
	x->covered = 0;
}

/* After a repetition of `loops` loops: 1 when every element is right and
 * the ranges covered exactly n * loops iterations.  The compute check
 * recomputes every 61st element and checks the rest were written. */
static inline int pfor_check(const struct pfor_ctx *x, int loops)
{
	if (x->covered != (uint64_t)x->n * (uint64_t)loops)
		return 0;
	if (x->a) {
		for (size_t i = 0; i < x->n; i++)
			if (x->a[i] != x->b[i] + PFOR_TRIAD_SCALE * x->c[i])
				return 0;
	} else {
		for (size_t i = 0; i < x->n; i++)
			if (x->out[i] == 0 || (i % 61 == 0 && x->out[i] != pfor_mix((uint64_t)i, x->iters)))
				return 0;
	}
	return 1;
}

/* A checksum of the outputs for the result column. */
static inline unsigned long long pfor_checksum(const struct pfor_ctx *x)
{
	uint64_t h = 0;
	if (x->a) {
		double s = 0.0;
		for (size_t i = 0; i < x->n; i++)
			s += x->a[i];
		memcpy(&h, &s, sizeof h);
	} else {
		for (size_t i = 0; i < x->n; i++)
			h = (h ^ x->out[i]) * 0x100000001b3ULL;
	}
	return (unsigned long long)h;
}

static inline void pfor_free(struct pfor_ctx *x)
{
	free(x->a);
	free(x->b);
	free(x->c);
	free(x->out);
}

/* One kind of loop at one size, for every worker count in o: each program
 * (weft, OpenMP, oneTBB) supplies its own. */
typedef void (*pfor_run_fn)(const struct bench_opts *o, int mem, size_t n, int passes, int iters,
                            size_t grain);

/* The command line every pfor program shares, then run for each --kind.
 * init (may be NULL) runs after parsing, before the header.  Returns the
 * exit status. */
static inline int pfor_main(int argc, char **argv, pfor_run_fn run, void (*init)(void))
{
	static const char own[] =
		"[--kind mem,compute] [--n N] [--passes P] [--iters K] [--grain G] ";
	struct bench_opts o;
	char kinds[32] = "mem,compute";
	long n = 0, grain = 0;
	int passes = 5, iters = 64;
	char *save = NULL;

	bench_opts_init(&o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--kind"))
			snprintf(kinds, sizeof kinds, "%s", bench_optval(argc, argv, &i, own));
		else if (!strcmp(argv[i], "--n"))
			n = bench_optlong(argc, argv, &i, own, 1, 1L << 32);
		else if (!strcmp(argv[i], "--passes"))
			passes = (int)bench_optlong(argc, argv, &i, own, 1, 10000);
		else if (!strcmp(argv[i], "--iters"))
			iters = (int)bench_optlong(argc, argv, &i, own, 1, 1 << 20);
		else if (!strcmp(argv[i], "--grain"))
			grain = bench_optlong(argc, argv, &i, own, 0, 1L << 32);
		else
			bench_usage_exit(argv[0], own);
	}
	if (init)
		init();
	bench_print_header(&o);
	for (char *k = strtok_r(kinds, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
		int mem = !strcmp(k, "mem");
		if (!mem && strcmp(k, "compute") != 0) {
			fprintf(stderr, "%s: unknown kind '%s' (mem, compute)\n", argv[0], k);
			return 2;
		}
		run(&o, mem, n ? (size_t)n : (size_t)1 << (mem ? 23 : 20), passes, iters, (size_t)grain);
	}
	return bench_failed() ? 1 : 0;
}

#endif /* BENCH_PFOR_KERNELS_H */
