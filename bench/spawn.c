/*
 * spawn: the cost of one spawn+wait against one plain call.
 *
 *   spawn_call  serial  ops plain calls of the task function through a
 *                       pointer (the baseline: what the spawn replaces)
 *   spawn_pair  weft    ops times { group_init; spawn(task); wait }: the
 *                       fork-join pair with nothing to steal in between
 *   spawn_flat  weft    ops spawns into one group, then one wait (the
 *                       deque grows; with 2+ workers the others steal)
 * and the same two with typed tasks (runtime weft-task): WEFT_SPAWN then
 * WEFT_SYNC, and ops WEFT_SPAWNs then ops WEFT_SYNCs (beyond a worker's
 * 262144 slots the spawns go to private chunks, which nobody steals).
 *
 * The task increments a counter (atomically: it may run on another worker);
 * the check is that it ran exactly ops times.  ns per operation is
 * median_s / ops * 1e9 (ops= in param).
 *
 *   spawn [--ops 1000000] [--workers 1,2] [--reps 5] [--warmup 1] [--no-header]
 */
#include "bench_weft.h"

struct spawn_arg {
	long ops;
	long count;
};

static void bump(void *p)
{
	__atomic_fetch_add((long *)p, 1, __ATOMIC_RELAXED);
}

/* Through a volatile pointer, so the call is neither inlined nor elided. */
static void (*volatile call_fn)(void *) = bump;

static void pair_root(void *p)
{
	struct spawn_arg *a = p;
	weft_group_t g;
	int rc;
	for (long i = 0; i < a->ops; i++) {
		weft_group_init(&g);
		if ((rc = weft_spawn(&g, bump, &a->count)) != 0)
			bench_fail("weft_spawn", rc);
		if ((rc = weft_wait(&g)) != 0)
			bench_fail("weft_wait", rc);
	}
}

static void flat_root(void *p)
{
	struct spawn_arg *a = p;
	weft_group_t g;
	int rc;
	weft_group_init(&g);
	for (long i = 0; i < a->ops; i++)
		if ((rc = weft_spawn(&g, bump, &a->count)) != 0)
			bench_fail("weft_spawn", rc);
	if ((rc = weft_wait(&g)) != 0)
		bench_fail("weft_wait", rc);
}

WEFT_VOID_TASK_1(tbump, long *, count)
{
	bump(count);
}

WEFT_VOID_TASK_2(tpair, long *, count, long, ops)
{
	for (long i = 0; i < ops; i++) {
		WEFT_SPAWN(tbump, count);
		WEFT_SYNC(tbump);
	}
}

WEFT_VOID_TASK_2(tflat, long *, count, long, ops)
{
	for (long i = 0; i < ops; i++)
		WEFT_SPAWN(tbump, count);
	for (long i = 0; i < ops; i++)
		WEFT_SYNC(tbump);
}

static void tpair_root(void *p)
{
	struct spawn_arg *a = p;
	WEFT_RUN(tpair, &a->count, a->ops);
}

static void tflat_root(void *p)
{
	struct spawn_arg *a = p;
	WEFT_RUN(tflat, &a->count, a->ops);
}

int main(int argc, char **argv)
{
	static const char own[] = "[--ops N] ";
	struct bench_opts o;
	double t[BENCH_MAX_REPS];
	char param[64], result[32];
	long ops = 1000000;

	bench_opts_init(&o, "1,2", 5);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own))
			continue;
		if (!strcmp(argv[i], "--ops"))
			ops = bench_optlong(argc, argv, &i, own, 1, 1L << 40);
		else
			bench_usage_exit(argv[0], own);
	}
	snprintf(param, sizeof param, "ops=%ld", ops);
	bench_print_header(&o);

	/* serial: plain calls */
	struct spawn_arg a = { ops, 0 };
	int ok = 1;
	for (int k = -o.warmup; k < o.reps; k++) {
		a.count = 0;
		double t0 = bench_now();
		for (long i = 0; i < ops; i++)
			call_fn(&a.count);
		double dt = bench_now() - t0;
		if (k >= 0) {
			t[k] = dt;
			ok &= a.count == ops;
		}
	}
	snprintf(result, sizeof result, "%ld", a.count);
	bench_report("spawn_call", "serial", 1, param, t, o.reps, result, ok);

	static const struct {
		const char *name, *rt;
		weft_task_fn root;
	} kinds[] = {
		{ "spawn_pair", "weft", pair_root },
		{ "spawn_flat", "weft", flat_root },
		{ "spawn_pair", "weft-task", tpair_root },
		{ "spawn_flat", "weft-task", tflat_root },
	};

	for (int wi = 0; wi < o.nworkers; wi++) {
		weft_runtime_t *rt = bench_weft_create(o.workers[wi]);
		for (size_t kd = 0; kd < sizeof kinds / sizeof kinds[0]; kd++) {
			if (!rt) {
				bench_report(kinds[kd].name, kinds[kd].rt, o.workers[wi], param, t, 0, "error", 0);
				continue;
			}
			ok = 1;
			for (int k = -o.warmup; k < o.reps; k++) {
				a.count = 0;
				double dt = bench_weft_run(rt, kinds[kd].root, &a);
				if (k >= 0) {
					t[k] = dt;
					ok &= a.count == ops;
				}
			}
			snprintf(result, sizeof result, "%ld", a.count);
			bench_report(kinds[kd].name, kinds[kd].rt, o.workers[wi], param, t, o.reps, result,
			             ok && !bench_failed());
		}
		bench_weft_destroy(rt);
	}
	return bench_failed() ? 1 : 0;
}
