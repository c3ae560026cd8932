/*
 * stats.c: snapshots and the human summary of the per-worker counters
 * (stats.h).  Any thread.
 */
#include <errno.h>
#include <string.h>

#include "worker.h"

static void load(const struct weft__worker *w, weft_stats_t *o)
{
	const struct weft__stats *s = &w->stats;
	uint64_t stolen = atom_load_u64(&w->stolen);

#define LOAD(f) o->f = (uint64_t)atom_load_64((const int64_t *)&s->f)
	LOAD(spawns);
	LOAD(submits);
	LOAD(injected);
	LOAD(steal_attempts);
	LOAD(steals);
	LOAD(parks);
	LOAD(wakeups);
	LOAD(parked_ns);
	LOAD(fibers);
	LOAD(resumes);
	LOAD(io_ops);
	LOAD(io_helps);
	LOAD(io_yields);
	LOAD(io_pulls);
#undef LOAD
	/* Derived (stats.h); while tasks are pending it can run ahead of
	 * what has really run, never behind it at quiescence. */
	o->tasks_run = o->spawns + o->submits + o->resumes - stolen + o->steals + o->injected;
}

static void add(weft_stats_t *t, const weft_stats_t *s)
{
	t->tasks_run += s->tasks_run;
	t->spawns += s->spawns;
	t->submits += s->submits;
	t->injected += s->injected;
	t->steal_attempts += s->steal_attempts;
	t->steals += s->steals;
	t->parks += s->parks;
	t->wakeups += s->wakeups;
	t->parked_ns += s->parked_ns;
	t->fibers += s->fibers;
	t->resumes += s->resumes;
	t->io_ops += s->io_ops;
	t->io_helps += s->io_helps;
	t->io_yields += s->io_yields;
	t->io_pulls += s->io_pulls;
}

int weft_stats_get(const weft_runtime_t *rt, weft_stats_t *total, weft_stats_t *per_worker, unsigned n)
{
	unsigned i;

	if (!rt || (n && !per_worker))
		return -EINVAL;
	if (total) {
		memset(total, 0, sizeof(*total));
		total->submits = (uint64_t)atom_load_64((const int64_t *)&rt->outside_submits);
	}
	for (i = 0; i < rt->nworkers; i++) {
		weft_stats_t s;
		load(&rt->workers[i], &s);
		if (i < n)
			per_worker[i] = s;
		if (total)
			add(total, &s);
	}
	return (int)rt->nworkers;
}

static int row(FILE *out, const char *name, const weft_stats_t *s)
{
	return fprintf(out, "%-8s %12llu %12llu %10llu %10llu %12llu %10llu %8llu %8llu %10.3f\n", name,
	               (unsigned long long)s->tasks_run, (unsigned long long)s->spawns,
	               (unsigned long long)s->submits, (unsigned long long)s->injected,
	               (unsigned long long)s->steal_attempts, (unsigned long long)s->steals,
	               (unsigned long long)s->parks, (unsigned long long)s->wakeups, (double)s->parked_ns / 1e9);
}

int weft_stats_print(const weft_runtime_t *rt, FILE *out)
{
	weft_stats_t total, s;
	char name[16];
	unsigned i;
	int ok;

	if (!rt || !out)
		return -EINVAL;
	weft_stats_get(rt, &total, NULL, 0);
	ok = fprintf(out, "weft: %u workers\n%-8s %12s %12s %10s %10s %12s %10s %8s %8s %10s\n", rt->nworkers,
	             "worker", "tasks_run", "spawns", "submits", "injected", "steal_tries", "steals", "parks",
	             "wakeups", "parked_s") > 0;
	for (i = 0; ok && i < rt->nworkers; i++) {
		load(&rt->workers[i], &s);
		snprintf(name, sizeof name, "%u", i);
		ok = row(out, name, &s) > 0;
	}
	if (ok)
		ok = row(out, "total", &total) > 0;
	if (ok && total.steal_attempts)
		ok = fprintf(out, "steal success %.1f%%; outside submits %llu\n",
		             100.0 * (double)total.steals / (double)total.steal_attempts,
		             (unsigned long long)atom_load_64((const int64_t *)&rt->outside_submits)) > 0;
	if (ok && total.io_ops)
		ok = fprintf(out,
		             "I/O: %llu operations and timers, %llu reaps of another worker's epoll set, "
		             "%llu yields to an io_uring worker owed completions (%llu with a pull onto "
		             "the yielding worker's CPU)\n",
		             (unsigned long long)total.io_ops, (unsigned long long)total.io_helps,
		             (unsigned long long)total.io_yields, (unsigned long long)total.io_pulls) > 0;
	return ok ? 0 : -EIO;
}
