/*
 * test_stats.c: the per-worker counters (weft_stats_get, weft_stats_print,
 * WEFT_STATS) and writing a trace (weft_trace_write).  The trace's reader
 * side is tested in test_weft_trace.c.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace_format.h"

/* fib that records, independently of the runtime, which worker ran each
 * task: the counters must agree with it worker by worker. */
#define MAXW 8
static atomic_ulong ran_on[MAXW];

struct cfib {
	unsigned n;
	uint64_t r;
};

static void fib_body(struct cfib *a);

/* A task: records where it ran, then computes. */
static void counted_task(void *p)
{
	int w = weft_worker_index();

	if (w >= 0 && w < MAXW)
		atomic_fetch_add(&ran_on[w], 1);
	fib_body(p);
}

/* fib(n-1) as a task, fib(n-2) as a plain call (not a task). */
static void fib_body(struct cfib *a)
{
	if (a->n < 2) {
		a->r = a->n;
		return;
	}
	struct cfib x = { a->n - 1, 0 }, y = { a->n - 2, 0 };
	weft_group_t g;
	weft_group_init(&g);
	if (weft_spawn(&g, counted_task, &x) != 0) {
		t_fail_at(__FILE__, __LINE__, "weft_spawn failed");
		fib_body(&x);
	}
	fib_body(&y);
	weft_wait(&g);
	a->r = x.r + y.r;
}

static void counts_match(unsigned workers, unsigned n, unsigned runs)
{
	weft_runtime_t *rt = t_runtime(workers);
	weft_stats_t total, per[MAXW];
	struct cfib f;
	uint64_t spawns_each = t_fib_serial(n + 1) - 1; /* a spawn per call with n >= 2 */

	for (unsigned w = 0; w < MAXW; w++)
		atomic_store(&ran_on[w], 0);
	for (unsigned i = 0; i < runs; i++) {
		f.n = n;
		f.r = 0;
		t_run(rt, counted_task, &f);
		cr_assert_eq(f.r, t_fib_serial(n));
	}
	cr_assert_eq(t_failures(), 0, "%s", t_fail_msg_);
	/* Every task of every run has returned (weft_run waited for the root,
	 * the root for its groups), so the snapshot is exact. */
	cr_assert_eq(weft_stats_get(rt, &total, per, workers), (int)workers);
	cr_assert_eq(total.spawns, runs * spawns_each, "spawns = %llu", (unsigned long long)total.spawns);
	cr_assert_eq(total.submits, runs, "submits = %llu", (unsigned long long)total.submits);
	cr_assert_eq(total.injected, runs, "each weft_run goes through the injector once");
	cr_assert_leq(total.steals, total.steal_attempts);
	cr_assert_leq(total.wakeups, total.parks);
	uint64_t seen = 0, spawn_sum = 0;
	for (unsigned w = 0; w < workers; w++) {
		uint64_t r = atomic_load(&ran_on[w]);
		cr_assert_eq(per[w].tasks_run, r, "worker %u: tasks_run %llu, the test saw %llu run there", w,
		             (unsigned long long)per[w].tasks_run, (unsigned long long)r);
		seen += r;
		spawn_sum += per[w].spawns;
	}
	cr_assert_eq(seen, runs * (spawns_each + 1), "every task ran once");
	cr_assert_eq(total.tasks_run, total.spawns + total.submits);
	cr_assert_eq(spawn_sum, total.spawns);
	t_destroy(rt);
}

Test(stats, counts_add_up_one_worker, .timeout = 30)
{
#ifdef WEFT_NO_STATS
	cr_skip_test("built with --disable-stats");
#endif
	counts_match(1, 18, 3);
}

Test(stats, counts_add_up_per_worker, .timeout = 60)
{
#ifdef WEFT_NO_STATS
	cr_skip_test("built with --disable-stats");
#endif
	/* Several workers: tasks are stolen, and each worker's count must
	 * still match what ran on it. */
	counts_match(4, 20, 5);
}

/* Poll until the snapshot's parks reach want (idle workers park within
 * microseconds; 5 s is only a guard). */
static void wait_parks(weft_runtime_t *rt, weft_stats_t *total, uint64_t want)
{
	double deadline = t_now() + 5.0;
	do {
		t_sleep_ms(5);
		weft_stats_get(rt, total, NULL, 0);
	} while (total->parks < want && t_now() < deadline);
}

Test(stats, parks_when_idle, .timeout = 30)
{
#ifdef WEFT_NO_STATS
	cr_skip_test("built with --disable-stats");
#endif
	weft_runtime_t *rt = t_runtime(2);
	weft_stats_t total;
	struct t_fib f = {15, 0};

	t_run(rt, t_fib_task, &f);
	/* Idle workers search briefly, then park: both must be asleep soon. */
	wait_parks(rt, &total, 2);
	cr_assert_geq(total.parks, 2, "parks = %llu after 5 s idle", (unsigned long long)total.parks);
	t_destroy(rt);
}

/* Poll until every worker sleeps: each has parked once more than it was
 * woken (nothing here does I/O, the only other way out of a park). */
static void wait_all_asleep(weft_runtime_t *rt, unsigned n, weft_stats_t *total)
{
	weft_stats_t per[MAXW];
	double deadline = t_now() + 5.0;
	unsigned asleep;

	do {
		t_sleep_ms(5);
		cr_assert_eq(weft_stats_get(rt, total, per, n), (int)n);
		asleep = 0;
		for (unsigned i = 0; i < n; i++)
			asleep += per[i].parks == per[i].wakeups + 1;
	} while (asleep < n && t_now() < deadline);
	cr_assert_eq(asleep, n, "%u of %u workers asleep after 5 s idle", asleep, n);
}

static void nothing(void *p)
{
	(void)p;
}

Test(stats, lone_submit_wakes_one_worker, .timeout = 30)
{
#ifdef WEFT_NO_STATS
	cr_skip_test("built with --disable-stats");
#endif
	/* One task from outside into a sleeping runtime wakes one worker:
	 * the woken searcher, finding nothing more, must not wake a second
	 * one (park.c, the cascade), whose system call would come before the
	 * task runs and which would only search and sleep again. */
	weft_runtime_t *rt = t_runtime(4);
	weft_stats_t before, after;
	weft_future_t *f = NULL;

	wait_all_asleep(rt, 4, &before);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(weft_submit(rt, nothing, NULL, &f), 0);
		cr_assert_eq(weft_future_wait(f), 0);
		weft_future_free(f);
		wait_all_asleep(rt, 4, &after);
		cr_assert_eq(after.wakeups - before.wakeups, 1,
		             "submit %d woke %llu workers", i,
		             (unsigned long long)(after.wakeups - before.wakeups));
		before = after;
	}
	t_destroy(rt);
}

static void submit_inner(void *p)
{
	struct t_fib *f = p;
	if (weft_submit(weft_runtime_current(), t_fib_task, f, NULL) != 0)
		t_fail_at(__FILE__, __LINE__, "weft_submit from a worker failed");
}

Test(stats, submits_from_workers_count, .timeout = 30)
{
#ifdef WEFT_NO_STATS
	cr_skip_test("built with --disable-stats");
#endif
	weft_runtime_t *rt = t_runtime(1);
	weft_stats_t total, per;
	struct t_fib f = {10, 0};

	t_run(rt, submit_inner, &f);
	/* The inner submission is detached: wait until the worker is idle. */
	wait_parks(rt, &total, 1);
	cr_assert_eq(weft_stats_get(rt, &total, &per, 1), 1);
	cr_assert_eq(f.r, 55);
	cr_assert_eq(total.submits, 2, "one outside, one from the worker");
	cr_assert_eq(per.submits, 1, "the worker's own submit is counted on it");
	cr_assert_eq(per.tasks_run, 2 + per.spawns, "both submissions and every spawn ran there");
	t_destroy(rt);
}

Test(stats, print_and_bad_arguments, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(2);
	weft_stats_t s;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	cr_assert_not_null(out);
	cr_assert_eq(weft_stats_print(rt, out), 0);
	fclose(out);
	cr_assert_not_null(strstr(buf, "worker"), "%s", buf);
	cr_assert_not_null(strstr(buf, "total"), "%s", buf);
	free(buf);

	cr_assert_eq(weft_stats_get(NULL, &s, NULL, 0), -EINVAL);
	cr_assert_eq(weft_stats_get(rt, &s, NULL, 1), -EINVAL);
	cr_assert_eq(weft_stats_print(NULL, stderr), -EINVAL);
	cr_assert_eq(weft_stats_print(rt, NULL), -EINVAL);
	t_destroy(rt);
}

Test(stats, env_prints_at_destroy, .timeout = 30)
{
	weft_config_t cfg;

	setenv("WEFT_STATS", "1", 1);
	weft_config_init(&cfg);
	unsetenv("WEFT_STATS");
	cr_assert_eq(cfg.stats_at_exit, 1);
	setenv("WEFT_STATS", "yes", 1);
	weft_config_init(&cfg);
	unsetenv("WEFT_STATS");
	cr_assert_eq(cfg.stats_at_exit, 0, "a malformed value keeps the default");
}

Test(trace, write_errors, .timeout = 30)
{
	weft_runtime_t *rt = t_runtime(1);

	cr_assert_eq(weft_trace_write(NULL, "/tmp/x"), -EINVAL);
	cr_assert_eq(weft_trace_write(rt, NULL), -EINVAL);
	cr_assert_eq(weft_trace_write(rt, "/tmp/weft-never-written.trace"), -ENOTSUP,
	             "a runtime without tracing has nothing to write");
	t_destroy(rt);

	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.trace_path = "/nonexistent-dir/x.trace";
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
#ifdef WEFT_NO_TRACE
	cr_assert_eq(weft_trace_write(rt, "/nonexistent-dir/x.trace"), -ENOTSUP);
	t_destroy(rt);
	return;
#endif
	cr_assert_eq(weft_trace_write(rt, "/nonexistent-dir/x.trace"), -ENOENT);
	cr_assert_str_eq(weft_strerror(-ENOENT), "No such file or directory");
	t_destroy(rt); /* reports the failed write on stderr, does not fail */
}

static void marker_task(void *arg)
{
	(void)arg;
}

Test(trace, records_injected_root, .timeout = 30)
{
#ifdef WEFT_NO_TRACE
	cr_skip_test("built with --disable-trace");
#endif
	char path[] = "/tmp/weft-test-trace-XXXXXX";
	int fd = mkstemp(path);
	weft_config_t cfg;
	weft_runtime_t *rt;

	cr_assert_geq(fd, 0);
	close(fd);
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.trace_path = path;
	cfg.trace_events = 1000;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(weft_run(rt, marker_task, NULL), 0);
	t_destroy(rt); /* writes the trace */

	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	struct weft_trace_header h;
	cr_assert_eq(fread(&h, sizeof h, 1, f), 1);
	cr_assert_eq(memcmp(h.magic, WEFT_TRACE_MAGIC, 8), 0);
	cr_assert_eq(h.version, WEFT_TRACE_VERSION);
	cr_assert_eq(h.nworkers, 2);
	cr_assert_gt(h.ticks_per_sec, 0);

	unsigned begins = 0, ends = 0, marker_begins = 0;
	for (unsigned w = 0; w < h.nworkers; w++) {
		struct weft_trace_lane lane;
		uint64_t last_ts = 0;
		cr_assert_eq(fread(&lane, sizeof lane, 1, f), 1);
		cr_assert_eq(lane.worker, w);
		cr_assert_leq(lane.nevents, 1024);
		for (uint64_t i = 0; i < lane.nevents; i++) {
			struct weft_trace_event e;
			cr_assert_eq(fread(&e, sizeof e, 1, f), 1);
			cr_assert_geq(e.ts, last_ts, "events of a lane are in time order");
			last_ts = e.ts;
			if (e.type == WEFT_EV_TASK_BEGIN) {
				begins++;
				cr_assert_eq(e.aux, WEFT_SRC_INJECTED, "weft_run's tasks come from the injector");
			}
			ends += e.type == WEFT_EV_TASK_END;
		}
	}
	cr_assert_eq(begins, 3);
	cr_assert_eq(ends, 3);
	/* The symbol table names the submitted function (not the runtime's
	 * wrapper) behind each begin. */
	for (uint64_t i = 0; i < h.nsyms; i++) {
		struct weft_trace_sym sym;
		char name[600];
		cr_assert_eq(fread(&sym, sizeof sym, 1, f), 1);
		cr_assert_lt(sym.len, sizeof name);
		cr_assert_eq(fread(name, 1, sym.len, f), sym.len);
		marker_begins += sym.addr == (uint64_t)(uintptr_t)marker_task;
	}
	cr_assert_eq(h.nsyms, 1, "one distinct task function");
	cr_assert_eq(marker_begins, 1);
	char extra;
	cr_assert_eq(fread(&extra, 1, 1, f), 0, "nothing after the symbol table");
	fclose(f);
	unlink(path);
}
