/*
 * uts_tree.h: tree generation for the Unbalanced Tree Search benchmark,
 * shared by uts.c and its peers.  Written from the published description
 * of UTS (Olivier et al., "UTS: An Unbalanced Tree Search Benchmark",
 * LCPC 2006) so that the T1 and T3 trees come out with their published
 * node counts; SHA-1 comes from nettle.
 *
 * A node is a 20-byte SHA-1 state and a height.  The root's state is
 * SHA-1(16 zero bytes, seed as 4 big-endian bytes); child i of a node has
 * state SHA-1(parent state, i as 4 big-endian bytes).  A node's random
 * number is the last 4 state bytes, big-endian, with the top bit cleared;
 * divided by 2^31 it is a uniform variate u in [0, 1).
 *
 *   binomial (-t 0): the root has floor(b0) children; any other node has
 *     m children with probability q (u < q), else none.
 *   geometric (-t 1): a node at depth d has floor(log(1-u) / log(1-p))
 *     children, p = 1 / (1 + b_d), where b_d is the expected branching
 *     factor from the shape function (-a): linear 0, expdec 1, cyclic 2,
 *     fixed 3 (b0 up to depth gen_mx, then 0); b_0 = b0 at the root.
 *   Children are capped at 100, except a binomial root at ceil(b0).
 */
#ifndef BENCH_UTS_TREE_H
#define BENCH_UTS_TREE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha1.h>
#include <nettle/version.h>

#include "bench_util.h"

enum { UTS_BIN = 0, UTS_GEO = 1 };
enum { UTS_LINEAR = 0, UTS_EXPDEC = 1, UTS_CYCLIC = 2, UTS_FIXED = 3 };

#define UTS_MAX_CHILDREN 100

struct uts_params {
	const char *name;
	int type;      /* -t */
	int shape;     /* -a (geometric) */
	int gen_mx;    /* -d (geometric) */
	double b0;     /* -b */
	double q;      /* -q (binomial) */
	int m;         /* -m (binomial) */
	int seed;      /* -r */
	unsigned long nodes; /* published node count */
};

/* The two standard trees and their published sizes. */
static const struct uts_params uts_trees[] = {
	/* T1: geometric, fixed shape: -t 1 -a 3 -d 10 -b 4 -r 19 */
	{ "T1", UTS_GEO, UTS_FIXED, 10, 4.0, 0.0, 0, 19, 4130071UL },
	/* T3: binomial: -t 0 -b 2000 -q 0.124875 -m 8 -r 42 */
	{ "T3", UTS_BIN, UTS_LINEAR, 0, 2000.0, 0.124875, 8, 42, 4112897UL },
};

struct uts_node {
	uint8_t state[SHA1_DIGEST_SIZE];
	int32_t height;
};

static inline void uts_sha1(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                            uint8_t *out)
{
	struct sha1_ctx c;
	sha1_init(&c);
	sha1_update(&c, alen, a);
	if (blen)
		sha1_update(&c, blen, b);
#if NETTLE_VERSION_MAJOR >= 4
	sha1_digest(&c, out);
#else
	sha1_digest(&c, SHA1_DIGEST_SIZE, out);
#endif
}

static inline void uts_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static inline void uts_root(const struct uts_params *p, struct uts_node *root)
{
	uint8_t seed[20];
	memset(seed, 0, sizeof seed);
	uts_be32(seed + 16, (uint32_t)p->seed);
	uts_sha1(seed, sizeof seed, NULL, 0, root->state);
	root->height = 0;
}

static inline void uts_child(const struct uts_node *parent, int i, struct uts_node *child)
{
	uint8_t idx[4];
	uts_be32(idx, (uint32_t)i);
	uts_sha1(parent->state, SHA1_DIGEST_SIZE, idx, sizeof idx, child->state);
	child->height = parent->height + 1;
}

static inline double uts_uniform(const struct uts_node *n)
{
	uint32_t r = ((uint32_t)n->state[16] << 24) | ((uint32_t)n->state[17] << 16) |
	             ((uint32_t)n->state[18] << 8) | (uint32_t)n->state[19];
	return (double)(r & 0x7fffffffU) / 2147483648.0;
}

static inline double uts_geo_branching(const struct uts_params *p, int depth)
{
	double b0 = p->b0, mx = (double)p->gen_mx, d = (double)depth;
	if (depth == 0)
		return b0;
	switch (p->shape) {
	case UTS_EXPDEC:
		return b0 * pow(d, -log(b0) / log(mx));
	case UTS_CYCLIC:
		if (d > 5 * mx)
			return 0.0;
		return pow(b0, sin(2.0 * 3.141592653589793 * d / mx));
	case UTS_FIXED:
		return depth < p->gen_mx ? b0 : 0.0;
	case UTS_LINEAR:
	default:
		return b0 * (1.0 - d / mx);
	}
}

static inline int uts_num_children(const struct uts_params *p, const struct uts_node *n)
{
	int nc;
	if (p->type == UTS_BIN) {
		if (n->height == 0) {
			nc = (int)floor(p->b0);
			if (nc > (int)ceil(p->b0))
				nc = (int)ceil(p->b0);
			return nc;
		}
		nc = uts_uniform(n) < p->q ? p->m : 0;
	} else {
		double prob = 1.0 / (1.0 + uts_geo_branching(p, n->height));
		double u = uts_uniform(n);
		nc = (int)floor(log(1.0 - u) / log(1.0 - prob));
	}
	return nc > UTS_MAX_CHILDREN ? UTS_MAX_CHILDREN : nc;
}

/*
 * The serial baseline: count the subtree of n (n included).  It computes
 * all the children's states first, then descends into them: the order in
 * which the task versions hash (their spawns are only pushes), and 10-20%
 * faster than descending right after each child's hash, because
 * independent SHA-1 computations overlap in the pipeline.
 */
__attribute__((unused)) static unsigned long uts_serial(const struct uts_params *p,
                                                        const struct uts_node *n)
{
	unsigned long count = 1;
	int nc = uts_num_children(p, n);
	if (nc == 0)
		return 1;
#ifdef __cplusplus
	struct uts_node *kids = (struct uts_node *)__builtin_alloca((size_t)nc * sizeof *kids);
#else
	struct uts_node kids[nc];
#endif
	for (int i = 0; i < nc; i++)
		uts_child(n, i, &kids[i]);
	for (int i = 0; i < nc; i++)
		count += uts_serial(p, &kids[i]);
	return count;
}

/* The tree named `name` (T1, T3), or NULL. */
static inline const struct uts_params *uts_find(const char *name)
{
	for (size_t i = 0; i < sizeof uts_trees / sizeof uts_trees[0]; i++)
		if (!strcmp(uts_trees[i].name, name))
			return &uts_trees[i];
	return NULL;
}

/* The CSV param string of tree p. */
static inline void uts_param(const struct uts_params *p, char *buf, size_t len)
{
	if (p->type == UTS_BIN)
		snprintf(buf, len, "tree=%s;t=0;b=%g;q=%g;m=%d;r=%d;nodes=%lu", p->name, p->b0,
		         p->q, p->m, p->seed, p->nodes);
	else
		snprintf(buf, len, "tree=%s;t=1;a=%d;d=%d;b=%g;r=%d;nodes=%lu", p->name,
		         p->shape, p->gen_mx, p->b0, p->seed, p->nodes);
}

/* The command line every uts program shares: common options plus --tree
 * LIST (default T1,T3), copied into trees. */
static inline void uts_parse_args(int argc, char **argv, struct bench_opts *o, char *trees,
                                  size_t len)
{
	static const char own[] = "[--tree T1,T3] ";

	snprintf(trees, len, "T1,T3");
	bench_opts_init(o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--tree"))
			snprintf(trees, len, "%s", bench_optval(argc, argv, &i, own));
		else
			bench_usage_exit(argv[0], own);
	}
}

/* The next tree of the comma-separated list (*save starts NULL), or NULL
 * at its end.  An unknown name ends the program with status 2. */
static inline const struct uts_params *uts_next_tree(char *list, char **save, const char *prog)
{
	char *name = strtok_r(*save ? NULL : list, ",", save);
	const struct uts_params *p;

	if (!name)
		return NULL;
	p = uts_find(name);
	if (!p) {
		fprintf(stderr, "%s: unknown tree '%s' (T1, T3)\n", prog, name);
		exit(2);
	}
	return p;
}

#endif /* BENCH_UTS_TREE_H */
