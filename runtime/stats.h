/*
 * stats.h: per-worker counters.
 *
 * Each worker owns its counters and is their only writer: an increment is
 * a plain read of the worker's own value and a relaxed atomic store (one
 * instruction on x86), never a locked one, and the counters sit in the
 * worker's owner-private cache lines.  Snapshots (stats.c) read them with
 * relaxed atomic loads from any thread.  ./configure --disable-stats
 * compiles every increment away.
 *
 * Tasks run are not counted one by one: the own-deque path of weft_wait is
 * the hottest loop in the runtime, and a counter there cost 2% of fib.  A
 * worker runs every task it spawned, submitted or queued as a continuation
 * (a fiber or an I/O callback to resume) except those stolen from it, plus those it stole or took from the injector, so stats.c derives
 *     tasks_run = spawns + submits + resumes - stolen + steals + injected,
 * which is exact once the tasks counted have run (quiescence).  `stolen` is
 * the one counter a thread other than the owner writes (the thief, with an
 * atomic increment, on the cold steal path).
 */
#ifndef WEFT_STATS_H
#define WEFT_STATS_H

#include <stdint.h>

#include "atomics.h"

struct weft__stats {
	uint64_t spawns;
	uint64_t submits;
	uint64_t injected;
	uint64_t steal_attempts;
	uint64_t steals;
	uint64_t parks;
	uint64_t wakeups;
	uint64_t parked_ns;
	uint64_t fibers;
	uint64_t resumes;
	uint64_t io_ops;
	uint64_t io_helps;
	uint64_t io_yields;
	uint64_t io_pulls;
};

#ifdef WEFT_NO_STATS
#define WEFT_STAT_ADD(w, field, n) ((void)(w), (void)(n))
#define WEFT_STAT_STOLEN(victim) ((void)(victim))
#else
/* A thief counts the task it took from victim.  Any thread. */
#define WEFT_STAT_STOLEN(victim) atom_inc_u64(&(victim)->stolen)
/* Owner worker only. */
#define WEFT_STAT_ADD(w, field, n) \
	atom_store_64((int64_t *)&(w)->stats.field, (int64_t)((w)->stats.field + (uint64_t)(n)))
#endif
#define WEFT_STAT_INC(w, field) WEFT_STAT_ADD(w, field, 1)

#endif /* WEFT_STATS_H */
