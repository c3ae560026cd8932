/*
 * hist.h: a log-linear latency histogram in the style of HdrHistogram.
 *
 * Values are nanoseconds.  Below 2^HIST_SUB_BITS (128 ns) every value has
 * its own bucket.  Above, each power-of-two range [2^e, 2^(e+1)) is cut into
 * 2^HIST_SUB_BITS (128) equal sub-buckets, so a bucket is at most 1/128 of
 * the values in it wide: any value is reported with a relative error under
 * 0.8%, from 1 µs to 60 s and beyond.  The top range is the one holding
 * HIST_MAX_NS (2^36 ns, about 68.7 s); larger values are clamped into it
 * (and counted in `clamped`), while max still records the true largest
 * value.  3,840 buckets of 8 bytes: 30 KiB, cheap to keep one per thread
 * and merge.
 *
 * Percentiles use the nearest-rank definition: the value at rank
 * ceil(p/100 * count) (at least 1) in sorted order.  What is returned is
 * the highest value that falls into that value's bucket (as HdrHistogram
 * does, so a percentile never understates), clamped to [min, max]: values
 * under 128 ns, the minimum and the maximum come back exactly.
 *
 * Not thread-safe: one writer per histogram; merge after the writers stop.
 */
#ifndef WEFT_TOOLS_HIST_H
#define WEFT_TOOLS_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Highest power of two whose range is kept: [2^35, 2^36) ns holds 60 s. */
#define HIST_TOP_EXP 35
#define HIST_MAX_NS ((UINT64_C(1) << (HIST_TOP_EXP + 1)) - 1)
#define HIST_BUCKETS (HIST_SUB_COUNT * (HIST_TOP_EXP - HIST_SUB_BITS + 2))

typedef struct hist {
	uint64_t count;   /* values recorded */
	uint64_t clamped; /* of which over HIST_MAX_NS */
	uint64_t min;     /* exact; UINT64_MAX when empty */
	uint64_t max;     /* exact; 0 when empty */
	double sum;       /* for the mean */
	uint64_t buckets[HIST_BUCKETS];
} hist_t;

/* Empty h. */
void hist_init(hist_t *h);

/* Record one value of ns nanoseconds. */
void hist_record(hist_t *h, uint64_t ns);

/* Add src's values to dst. */
void hist_merge(hist_t *dst, const hist_t *src);

/* The p-th percentile (0 <= p <= 100) as described above; 0 when empty. */
uint64_t hist_percentile(const hist_t *h, double p);

/* Arithmetic mean of the recorded values (exact, not bucketed); 0 when
 * empty. */
double hist_mean(const hist_t *h);

/* Bucket index of a value, and the highest value of a bucket: exposed for
 * the tests. */
unsigned hist_bucket(uint64_t ns);
uint64_t hist_bucket_high(unsigned idx);

#endif /* WEFT_TOOLS_HIST_H */
