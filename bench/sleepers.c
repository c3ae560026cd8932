/*
 * sleepers: many concurrent fibers blocked in weft_sleep, on each backend:
 * what a suspended fiber costs in memory, and how late the sleepers wake.
 *
 *   sleepers_mem   A fresh runtime; VmRSS (and VmSize, and the malloc heap
 *                  from mallinfo2) read once its workers have started, then
 *                  again while all --fibers fibers are asleep (weft_sleep of
 *                  --hold-ms, started from the main thread; the reading is
 *                  taken once every fiber has entered its sleep and none has
 *                  woken).  median_s/min_s/max_s here are BYTES of RSS per
 *                  suspended fiber (delta / fibers) over the repetitions, not
 *                  seconds; result: vsz_per_fiber= (address space, mostly the
 *                  stack reservation), heap_per_fiber= (malloc'd bytes),
 *                  stack_size=, asleep= (fibers asleep at the reading).
 *   sleepers_wake  --fibers fibers sleep a random 10..100 ms each (uniform,
 *                  fixed seed); lateness = the time weft_sleep returned
 *                  minus (the time it was called + the duration).
 *                  median_s is the median over repetitions of the p50
 *                  lateness, min_s/max_s the smallest and largest lateness
 *                  of any sleeper; result: p99_s= (median of the
 *                  per-repetition p99), early= (sleeps that returned before
 *                  their time: FAIL when nonzero), total_s= (median time
 *                  until the last sleeper had returned).  With --linger-ms
 *                  every sleeper, once woken and timed, sleeps on until
 *                  --linger-ms after the latest wake time, so that no
 *                  fiber exits (and frees its stack) while others are
 *                  still due: the lateness of the timers alone.
 *
 *   sleepers [--fibers 10000] [--hold-ms 500] [--min-ms 10] [--max-ms 100]
 *            [--linger-ms 0] [--what mem,wake] [--io uring,epoll] [--workers 2]
 *            [--reps 3] [--no-header]
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdatomic.h>

#include "bench_io.h"

static const char *own_usage =
	"[--fibers N] [--hold-ms MS] [--min-ms MS] [--max-ms MS] [--linger-ms MS] [--what mem,wake] "
	"[--io uring,epoll] ";

struct sleeper {
	uint64_t dur_ns, linger_ns;
	int64_t late_ns;
	int rc;
	struct group *g;
};

struct group {
	atomic_long started, woken;
	struct bench_latch done;
};

static void sleeper_fiber(void *p)
{
	struct sleeper *s = p;
	atomic_fetch_add_explicit(&s->g->started, 1, memory_order_relaxed);
	uint64_t t0 = bench_ns();
	s->rc = weft_sleep(s->dur_ns);
	uint64_t t1 = bench_ns();
	s->late_ns = (int64_t)(t1 - t0) - (int64_t)s->dur_ns;
	atomic_fetch_add_explicit(&s->g->woken, 1, memory_order_relaxed);
	if (s->linger_ns && s->rc == 0)
		s->rc = weft_sleep(s->linger_ns);
	bench_latch_done(&s->g->done);
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Start n sleepers on rt; 0 or -1. */
static int start_all(weft_runtime_t *rt, struct sleeper *s, long n, struct group *g)
{
	int rc;
	atomic_store(&g->started, 0);
	atomic_store(&g->woken, 0);
	bench_latch_init(&g->done, n);
	for (long i = 0; i < n; i++) {
		s[i].g = g;
		s[i].rc = 0;
		s[i].late_ns = 0;
		if ((rc = weft_go(rt, sleeper_fiber, &s[i])) != 0) {
			bench_fail("weft_go", rc);
			/* the rest never start: account for them */
			for (long j = i; j < n; j++) {
				s[j].rc = rc;
				atomic_fetch_add(&g->started, 1);
				bench_latch_done(&g->done);
			}
			return -1;
		}
	}
	return 0;
}

static int wait_all(struct group *g, double timeout_s)
{
	int rc = bench_latch_wait(&g->done, timeout_s);
	if (rc != 0) {
		bench_fail("sleepers (timed out)", rc);
		exit(1);
	}
	bench_latch_destroy(&g->done);
	return 0;
}

struct mem_result {
	double rss, vsz, heap; /* bytes per fiber */
	long asleep;
};

static int mem_once(unsigned w, int io, long n, uint64_t hold_ns, struct sleeper *s,
                    struct mem_result *m)
{
	struct group g;
	weft_runtime_t *rt = bench_io_create(w, io, 0);
	if (!rt)
		return -1;
	/* The sleepers' own records are touched before the first reading;
	 * let the workers start and settle. */
	for (long i = 0; i < n; i++)
		s[i] = (struct sleeper){ .dur_ns = hold_ns, .g = &g };
	bench_sleep(0.05);
	long rss0 = bench_status_kb("VmRSS"), vsz0 = bench_status_kb("VmSize");
	size_t heap0 = heap_bytes();
	start_all(rt, s, n, &g);
	double deadline = bench_now() + 60.0;
	while (atomic_load(&g.started) < n && bench_now() < deadline)
		bench_sleep(0.001);
	/* Every fiber counted itself just before weft_sleep: give the last
	 * ones a moment to be suspended. */
	bench_sleep(0.005);
	long rss1 = bench_status_kb("VmRSS"), vsz1 = bench_status_kb("VmSize");
	size_t heap1 = heap_bytes();
	m->asleep = atomic_load(&g.started) - atomic_load(&g.woken);
	m->rss = (double)(rss1 - rss0) * 1024.0 / (double)n;
	m->vsz = (double)(vsz1 - vsz0) * 1024.0 / (double)n;
	m->heap = ((double)heap1 - (double)heap0) / (double)n;
	wait_all(&g, 60.0 + (double)hold_ns * 1e-9);
	bench_weft_destroy(rt);
	for (long i = 0; i < n; i++)
		if (s[i].rc != 0) {
			bench_fail("weft_sleep", s[i].rc);
			return -1;
		}
	return 0;
}

struct wake_result {
	double p50, p99, min, max, total;
	long early, errors;
};

static void wake_once(weft_runtime_t *rt, long n, uint64_t min_ns, uint64_t max_ns,
                      uint64_t linger_ns, struct sleeper *s, double *lat, struct wake_result *r)
{
	struct group g;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (long i = 0; i < n; i++) {
		s[i].dur_ns = min_ns + bench_rand(&seed) % (max_ns - min_ns + 1);
		/* all stay until the last has woken: no exits among the wakes */
		s[i].linger_ns = linger_ns ? linger_ns + max_ns - s[i].dur_ns : 0;
	}
	double t0 = bench_now();
	start_all(rt, s, n, &g);
	wait_all(&g, 60.0 + (double)(max_ns + linger_ns) * 1e-9);
	r->total = bench_now() - t0;
	r->early = r->errors = 0;
	for (long i = 0; i < n; i++) {
		lat[i] = (double)s[i].late_ns * 1e-9;
		r->early += s[i].late_ns < 0;
		r->errors += s[i].rc != 0;
	}
	r->p50 = bench_percentile(lat, (int)n, 50);
	r->p99 = bench_percentile(lat, (int)n, 99);
	r->min = lat[0];
	r->max = lat[n - 1];
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	long n = 10000, hold_ms = 500, min_ms = 10, max_ms = 100, linger_ms = 0;
	int what = 3;
	char param[128], result[192];

	bench_opts_init(&o, "2", 3);
	bench_io_parse(&io, "uring,epoll");
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage) ||
		    bench_io_arg(&io, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--fibers"))
			n = bench_optlong(argc, argv, &i, own_usage, 1, 1000000);
		else if (!strcmp(argv[i], "--hold-ms"))
			hold_ms = bench_optlong(argc, argv, &i, own_usage, 1, 600000);
		else if (!strcmp(argv[i], "--min-ms"))
			min_ms = bench_optlong(argc, argv, &i, own_usage, 0, 600000);
		else if (!strcmp(argv[i], "--max-ms"))
			max_ms = bench_optlong(argc, argv, &i, own_usage, 0, 600000);
		else if (!strcmp(argv[i], "--linger-ms"))
			linger_ms = bench_optlong(argc, argv, &i, own_usage, 0, 600000);
		else if (!strcmp(argv[i], "--what")) {
			const char *v = bench_optval(argc, argv, &i, own_usage);
			what = (strstr(v, "mem") ? 1 : 0) | (strstr(v, "wake") ? 2 : 0);
			if (!what)
				bench_usage_exit(argv[0], own_usage);
		} else
			bench_usage_exit(argv[0], own_usage);
	}
	if (max_ms < min_ms) {
		fprintf(stderr, "%s: --max-ms below --min-ms\n", argv[0]);
		return 2;
	}
	bench_raise_nofile(65536);
	bench_print_header(&o);

	struct sleeper *s = calloc((size_t)n, sizeof *s);
	double *lat = calloc((size_t)n, sizeof *lat);
	if (!s || !lat)
		return 1;
	weft_config_t defcfg;
	weft_config_init(&defcfg);
	size_t stack = defcfg.fiber_stack_size ? defcfg.fiber_stack_size : 256 * 1024;

	for (int wi = 0; wi < o.nworkers; wi++) {
		unsigned w = o.workers[wi];
		if (what & 1) {
			double rss[BENCH_IO_MAX][BENCH_MAX_REPS], vsz[BENCH_IO_MAX][BENCH_MAX_REPS];
			double heap[BENCH_IO_MAX][BENCH_MAX_REPS];
			long asleep[BENCH_IO_MAX] = { n, n };
			int ok[BENCH_IO_MAX] = { 1, 1 };
			for (int k = 0; k < o.reps; k++)
				for (int bb = 0; bb < io.n; bb++) {
					int b = (bb + k) % io.n;
					struct mem_result m;
					memset(&m, 0, sizeof m);
					if (ok[b] < 0 ||
					    mem_once(w, io.io[b], n, (uint64_t)hold_ms * 1000000u, s, &m) != 0) {
						ok[b] = -1;
						continue;
					}
					rss[b][k] = m.rss;
					vsz[b][k] = m.vsz;
					heap[b][k] = m.heap;
					if (m.asleep < asleep[b])
						asleep[b] = m.asleep;
				}
			for (int b = 0; b < io.n; b++) {
				if (ok[b] < 0)
					continue;
				snprintf(param, sizeof param, "fibers=%ld;hold_ms=%ld", n, hold_ms);
				snprintf(result, sizeof result,
				         "vsz_per_fiber=%.0f;heap_per_fiber=%.0f;stack_size=%zu;asleep=%ld",
				         bench_median(vsz[b], o.reps), bench_median(heap[b], o.reps), stack,
				         asleep[b]);
				bench_report("sleepers_mem", bench_io_label(io.io[b]), w, param, rss[b], o.reps,
				             result, asleep[b] == n && !bench_failed());
			}
		}
		if (what & 2) {
			weft_runtime_t *rts[BENCH_IO_MAX] = { 0 };
			struct wake_result r[BENCH_IO_MAX][BENCH_MAX_REPS];
			for (int b = 0; b < io.n; b++)
				rts[b] = bench_io_create(w, io.io[b], 0);
			for (int k = 0; k < o.reps; k++)
				for (int bb = 0; bb < io.n; bb++) {
					int b = (bb + k) % io.n;
					if (rts[b])
						wake_once(rts[b], n, (uint64_t)min_ms * 1000000u,
						          (uint64_t)max_ms * 1000000u,
						          (uint64_t)linger_ms * 1000000u, s, lat, &r[b][k]);
				}
			for (int b = 0; b < io.n; b++) {
				double p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS], tot[BENCH_MAX_REPS];
				double mn = 1e9, mx = -1e9;
				long early = 0, errors = 0;
				if (!rts[b])
					continue;
				for (int k = 0; k < o.reps; k++) {
					p50[k] = r[b][k].p50;
					p99[k] = r[b][k].p99;
					tot[k] = r[b][k].total;
					mn = r[b][k].min < mn ? r[b][k].min : mn;
					mx = r[b][k].max > mx ? r[b][k].max : mx;
					early += r[b][k].early;
					errors += r[b][k].errors;
				}
				snprintf(param, sizeof param, "fibers=%ld;sleep_ms=%ld-%ld;linger_ms=%ld", n,
				         min_ms, max_ms, linger_ms);
				snprintf(result, sizeof result, "p99_s=%.9f;early=%ld;errors=%ld;total_s=%.4f",
				         bench_median(p99, o.reps), early, errors, bench_median(tot, o.reps));
				printf("sleepers_wake,%s,%u,%s,%d,%.9f,%.9f,%.9f,%s,%s\n", bench_io_label(io.io[b]),
				       w, param, o.reps, bench_median(p50, o.reps), mn, mx, result,
				       early == 0 && errors == 0 && !bench_failed() ? "ok" : "FAIL");
				fflush(stdout);
			}
			for (int b = 0; b < io.n; b++)
				bench_weft_destroy(rts[b]);
		}
	}
	free(s);
	free(lat);
	return bench_failed() ? 1 : 0;
}
