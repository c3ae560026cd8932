/*
 * group.c: fork-join: weft_spawn, weft_wait, weft_parallel_for.
 *
 * This is the hot path.  A spawn writes a three-word record into the
 * calling worker's deque (no allocation), counts it in the group, and reads
 * one read-mostly word to decide whether a parked worker needs waking.
 *
 * Group counting.  A group is owned by the worker that initialised it.
 * Spawns and completions on the owner are counted in plain owner-private
 * fields (spawned_, done_); those on other workers in atomic ones
 * (remote_spawned_, remote_done_).  So the common case, a child taken back
 * and run by its parent's worker, costs no atomic instruction at all.
 *
 * A group initialised on a fiber's stack has no owner (WEFT__GROUP_SHARED):
 * the fiber may suspend between init and wait and come back on another
 * worker, so all of its counts go to the atomic fields.
 *
 * Invariants
 *   I1  spawned_ + remote_spawned_ >= done_ + remote_done_ at all times;
 *       equality, read as below, means every task of the group returned.
 *   I2  a spawn into g by another worker happens inside a task that is
 *       itself counted (directly or through a chain of waited groups) in g,
 *       so it happens before that task's completion is counted.
 *   I3  group_done reads remote_done_ (acquire) before remote_spawned_: a
 *       completion it sees brings the spawns that preceded it (I2), so
 *       equality cannot be reached while a counted task is still running.
 */
#include <errno.h>
#include <stdbool.h>

#include "worker.h"

void weft_group_init(weft_group_t *g)
{
	struct weft__worker *w = weft__self();

	if (!g)
		return;
	g->owner_ = w && w->fiber ? WEFT__GROUP_SHARED : (void *)w;
	g->spawned_ = 0;
	g->done_ = 0;
	g->remote_spawned_ = 0;
	g->remote_done_ = 0;
}

/* The rare paths of a spawn: a spawn into another worker's group, or a
 * full deque.  Kept out of line so that the common path stays small. */
static __attribute__((noinline)) int spawn_slow(struct weft__worker *w, weft_group_t *g,
                                                const struct weft__task *t)
{
	bool own = g->owner_ == (void *)w;

	/* Counted before the push: once pushed, the task may be stolen and
	 * complete at once, and its completion must never be seen without
	 * its spawn (I1, I3). */
	if (own)
		g->spawned_++;
	else
		atom_inc_u64(&g->remote_spawned_);
	if (weft__deque_push(&w->dq, t) != 0) {
		if (own)
			g->spawned_--;
		else
			(void)atom_faa_64((int64_t *)&g->remote_spawned_, -1);
		return -ENOMEM;
	}
	WEFT_STAT_INC(w, spawns);
	weft__notify(w->rt, &w->rt->idle);
	return 0;
}

int weft_spawn(weft_group_t *g, weft_task_fn fn, void *arg)
{
	struct weft__worker *w = weft__self();
	struct weft__task t;

	if (__builtin_expect(!g || !fn, 0))
		return -EINVAL;
	if (__builtin_expect(!w, 0))
		return -EPERM;
	if (__builtin_expect(!g->owner_, 0))
		return -EINVAL;
	t.fn = fn;
	t.arg = arg;
	t.group = g;
	/* The common case: a spawn into the own group with room in the
	 * deque.  Its count needs no atomic (only this thread reads
	 * spawned_), and may follow the push because the task can only
	 * complete on this thread or be counted remotely, and the waiter is
	 * this thread too. */
	if (__builtin_expect(g->owner_ != (void *)w || !weft__deque_try_push(&w->dq, &t), 0))
		return spawn_slow(w, g, &t);
	g->spawned_++;
	WEFT_STAT_INC(w, spawns);
	weft__notify(w->rt, &w->rt->idle);
	return 0;
}

static inline bool group_done(weft_group_t *g)
{
	uint64_t rdone = atom_load_u64(&g->remote_done_); /* I3: first */
	uint64_t rspawned = atom_load_u64(&g->remote_spawned_);
	return g->spawned_ + rspawned == g->done_ + rdone;
}

static bool group_done_cb(void *g)
{
	return group_done(g);
}

/* weft_wait for a group made on a fiber's stack (WEFT__GROUP_SHARED): the
 * waiting fiber may move between workers while it runs the children. */
static __attribute__((noinline)) int wait_shared(struct weft__worker *w, weft_group_t *g)
{
	struct weft__task t;

	while (!group_done(g)) {
		if (!weft__deque_take(&w->dq, &t)) {
			weft__help_until(w, group_done_cb, g, false);
			break;
		}
		w = weft__run_task_fiber(w, &t);
	}
	return 0;
}

int weft_wait(weft_group_t *g)
{
	struct weft__worker *w = weft__self();
	struct weft__task t;

	if (!g)
		return -EINVAL;
	if (!w)
		return -EPERM;
	if (g->owner_ != (void *)w)
		return g->owner_ == WEFT__GROUP_SHARED ? wait_shared(w, g) : -EPERM;
	/* Fast path: the children are still in the own deque.  An owned
	 * group was made on this thread's own stack, so no fiber is
	 * involved and every task returns here. */
	while (!group_done(g)) {
		if (!weft__deque_take(&w->dq, &t)) {
			weft__help_until(w, group_done_cb, g, false);
			break;
		}
		weft__run_task(w, &t);
	}
	return 0;
}

struct pf {
	weft_range_fn body;
	void *ctx;
	size_t grain;
};

struct pf_range {
	const struct pf *pf;
	size_t lo, hi;
};

static void pf_split(const struct pf *pf, size_t lo, size_t hi);

static void pf_task(void *arg)
{
	struct pf_range *r = arg;
	pf_split(r->pf, r->lo, r->hi);
}

/* Halve until at most grain iterations remain: spawn the upper half, do the
 * lower half here.  A failed spawn (out of memory) runs inline instead. */
static void pf_split(const struct pf *pf, size_t lo, size_t hi)
{
	if (hi - lo <= pf->grain) {
		pf->body(lo, hi, pf->ctx);
		return;
	}
	size_t mid = lo + (hi - lo) / 2;
	struct pf_range upper = { pf, mid, hi };
	weft_group_t g;

	weft_group_init(&g);
	if (weft_spawn(&g, pf_task, &upper) != 0)
		pf_split(pf, mid, hi);
	pf_split(pf, lo, mid);
	weft_wait(&g);
}

int weft_parallel_for(size_t begin, size_t end, size_t grain, weft_range_fn body, void *ctx)
{
	struct weft__worker *w = weft__self();
	struct pf pf;

	if (!body || begin > end)
		return -EINVAL;
	if (!w)
		return -EPERM;
	if (begin == end)
		return 0;
	if (grain == 0) {
		size_t pieces = 8 * (size_t)w->rt->nworkers;
		grain = (end - begin + pieces - 1) / pieces;
	}
	pf.body = body;
	pf.ctx = ctx;
	pf.grain = grain;
	pf_split(&pf, begin, end);
	return 0;
}
