/*
 * hist.c: the log-linear histogram of hist.h.
 *
 * Bucket index of a value v:
 *   v < 128:  v itself (exact);
 *   v >= 128: with e = floor(log2 v) and s = (v >> (e - 7)) - 128 (the 7
 *             bits under the leading one), (e - 6) * 128 + s.
 * So indices 0..127 are the exact values, 128..255 the range [128, 256)
 * (still exact: width 1), 256..383 [256, 512) in steps of 2, and so on up
 * to the range of 2^HIST_TOP_EXP.
 */
#include "hist.h"

#include <string.h>

void hist_init(hist_t *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_bucket(uint64_t v)
{
	if (v > HIST_MAX_NS)
		v = HIST_MAX_NS;
	if (v < HIST_SUB_COUNT)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned s = (unsigned)(v >> (e - HIST_SUB_BITS)) - HIST_SUB_COUNT;
	return (e - HIST_SUB_BITS + 1) * HIST_SUB_COUNT + s;
}

uint64_t hist_bucket_high(unsigned idx)
{
	if (idx < HIST_SUB_COUNT)
		return idx;
	unsigned shift = idx / HIST_SUB_COUNT - 1; /* e - HIST_SUB_BITS */
	uint64_t low = (uint64_t)(HIST_SUB_COUNT + idx % HIST_SUB_COUNT) << shift;
	return low + (UINT64_C(1) << shift) - 1;
}

void hist_record(hist_t *h, uint64_t ns)
{
	h->count++;
	h->sum += (double)ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
	if (ns > HIST_MAX_NS)
		h->clamped++;
	h->buckets[hist_bucket(ns)]++;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
	dst->count += src->count;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

uint64_t hist_percentile(const hist_t *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p < 0)
		p = 0;
	if (p > 100)
		p = 100;
	/* Nearest rank: ceil(p/100 * count), at least 1.  The small epsilon
	 * keeps 99.9% of 1000 at rank 999 despite binary rounding. */
	double exact = p / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)exact;
	if ((double)rank < exact - 1e-9)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank >= h->count)
		return h->max;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

double hist_mean(const hist_t *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
