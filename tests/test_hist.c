/*
 * test_hist.c: weft-load's latency histogram (tools/hist.h).
 *
 * Known data with known nearest-rank percentiles: exact where the buckets
 * are exact (under 256 ns, min, max), within the documented 1/128 relative
 * error above, never below the true value.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "hist.h"

static hist_t h;

/* The nearest-rank percentile of sorted v[0..n). */
static uint64_t nearest_rank(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t l = *(const uint64_t *)a, r = *(const uint64_t *)b;
	return (l > r) - (l < r);
}

Test(hist, empty_reads_zero)
{
	hist_init(&h);
	cr_assert_eq(hist_percentile(&h, 50), 0);
	cr_assert_eq(hist_percentile(&h, 100), 0);
	cr_assert_eq(hist_mean(&h), 0.0);
}

Test(hist, small_values_are_exact)
{
	hist_init(&h);
	for (uint64_t v = 1; v <= 100; v++)
		hist_record(&h, v);
	cr_assert_eq(h.count, 100);
	cr_assert_eq(hist_percentile(&h, 0), 1);
	cr_assert_eq(hist_percentile(&h, 1), 1);
	cr_assert_eq(hist_percentile(&h, 50), 50);
	cr_assert_eq(hist_percentile(&h, 90), 90);
	cr_assert_eq(hist_percentile(&h, 99), 99);
	cr_assert_eq(hist_percentile(&h, 99.9), 100);
	cr_assert_eq(hist_percentile(&h, 100), 100);
	cr_assert_float_eq(hist_mean(&h), 50.5, 1e-9);
}

Test(hist, thousand_values_p999)
{
	/* 1..1000 µs: p99.9 is the 999th value, p50 the 500th. */
	hist_init(&h);
	for (uint64_t v = 1; v <= 1000; v++)
		hist_record(&h, v * 1000);
	uint64_t p50 = hist_percentile(&h, 50), p999 = hist_percentile(&h, 99.9);
	cr_assert(p50 >= 500000 && p50 <= 500000 + 500000 / 128, "p50 %lu", (unsigned long)p50);
	cr_assert(p999 >= 999000 && p999 <= 999000 + 999000 / 128, "p99.9 %lu",
		  (unsigned long)p999);
	cr_assert_eq(hist_percentile(&h, 100), 1000000);
	cr_assert_eq(h.min, 1000);
}

Test(hist, bucket_bounds_are_exact_and_tight)
{
	/* The highest value of a bucket maps to that bucket, the next value to
	 * the next one; widths stay within 1/128 of the value. */
	for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
		uint64_t hi = hist_bucket_high(i);
		cr_assert_eq(hist_bucket(hi), i, "bucket %u high %lu", i, (unsigned long)hi);
		cr_assert_eq(hist_bucket(hi + 1), i + 1, "bucket %u", i);
		if (i > 0) {
			uint64_t lo = hist_bucket_high(i - 1) + 1;
			cr_assert((double)(hi - lo) <= (double)lo / 128.0, "bucket %u too wide", i);
		}
	}
	/* 60 s is inside the range; larger values are clamped, max is not. */
	cr_assert(HIST_MAX_NS >= UINT64_C(60000000000));
	hist_init(&h);
	hist_record(&h, UINT64_C(60000000000));
	uint64_t p = hist_percentile(&h, 50);
	cr_assert_eq(p, UINT64_C(60000000000));
	hist_record(&h, UINT64_C(1) << 40);
	cr_assert_eq(h.clamped, 1);
	cr_assert_eq(hist_percentile(&h, 100), UINT64_C(1) << 40);
}

Test(hist, random_data_within_one_percent)
{
	enum { N = 100000 };
	static uint64_t v[N];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	hist_init(&h);
	for (size_t i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Log-uniform from 1 µs to about 60 s. */
		double e = (double)(x % 1000000) / 1000000.0 * 17.9;
		v[i] = (uint64_t)(1000.0 * __builtin_exp(e));
		hist_record(&h, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	static const double ps[] = {0, 10, 50, 90, 99, 99.9, 99.99, 100};
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		uint64_t want = nearest_rank(v, N, ps[k]);
		uint64_t got = hist_percentile(&h, ps[k]);
		cr_assert(got >= want, "p%g: %lu < %lu", ps[k], (unsigned long)got,
			  (unsigned long)want);
		cr_assert((double)(got - want) <= (double)want * 0.01, "p%g: %lu vs %lu", ps[k],
			  (unsigned long)got, (unsigned long)want);
	}
}

Test(hist, merge_equals_recording_together)
{
	static hist_t a, b, all;
	hist_init(&a);
	hist_init(&b);
	hist_init(&all);
	for (uint64_t v = 1; v <= 5000; v++) {
		hist_record(v % 2 ? &a : &b, v * 777);
		hist_record(&all, v * 777);
	}
	hist_merge(&a, &b);
	cr_assert_eq(a.count, all.count);
	cr_assert_eq(a.min, all.min);
	cr_assert_eq(a.max, all.max);
	for (double p = 0; p <= 100; p += 0.5)
		cr_assert_eq(hist_percentile(&a, p), hist_percentile(&all, p), "p%g", p);
}
