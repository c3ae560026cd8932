/*
 * trace.h: recording scheduling events into per-worker rings.
 *
 * When a runtime traces (cfg.trace_path or WEFT_TRACE), each worker owns a
 * preallocated ring of events (trace_format.h) and is its only writer; it
 * writes the event's words with relaxed atomic stores and then publishes it
 * by a release store of head, so weft_trace_write can copy a consistent
 * prefix from another thread (an event being overwritten in a wrapped ring
 * may be torn; the writer drops the oldest quarter-ring to avoid reading
 * those).  When the runtime does not trace, each trace point is one load
 * and a not-taken branch; ./configure --disable-trace removes them.
 *
 * Trace points sit on the scheduler's slow paths only: tasks run from the
 * worker loop or taken from elsewhere (stolen, injected), steals, searching,
 * parking, waiting with nothing local.  A child taken back from the own
 * deque inside weft_wait runs within its parent's span, unrecorded: the
 * spawn path stays as fast as without tracing, and a fork-join tree shows
 * as the spans of its stolen subtrees.
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stdint.h>
#include <time.h>

#include "atomics.h"
#include "trace_format.h"

struct weft__trace_ring {
	struct weft_trace_event *ev;
	uint64_t mask;
	uint64_t head; /* events ever written; owner-written, release */
};

struct weft_runtime;

/* Allocate rings when rt->cfg asks for tracing.  Returns 0 or -ENOMEM. */
int weft__trace_init(struct weft_runtime *rt);
/* Write the trace file if configured.  Workers stopped. */
void weft__trace_flush(struct weft_runtime *rt);
/* Free the rings (any that exist). */
void weft__trace_fini(struct weft_runtime *rt);

static inline uint64_t weft__trace_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Record one event on ring r (the calling worker's).  Owner worker only. */
static inline void weft__trace_rec(struct weft__trace_ring *r, uint32_t type, uint32_t aux, uint64_t arg)
{
	uint64_t i = r->head;
	struct weft_trace_event *e = &r->ev[i & r->mask];

	atom_store_64((int64_t *)&e->ts, (int64_t)weft__trace_now());
	atom_store_64((int64_t *)&e->arg, (int64_t)arg);
	atom_store_32(&e->type, type);
	atom_store_32(&e->aux, aux);
	atom_store_rel_64((int64_t *)&r->head, (int64_t)(i + 1));
}

#ifdef WEFT_NO_TRACE
#define WEFT_TRACE(w, type, aux, arg) ((void)(w), (void)(type), (void)(aux), (void)(arg))
#else
#define WEFT_TRACE(w, type, aux, arg)                                                       \
	do {                                                                                \
		if (__builtin_expect((w)->trace != NULL, 0))                                \
			weft__trace_rec((w)->trace, (type), (uint32_t)(aux), (uint64_t)(arg)); \
	} while (0)
#endif

#endif /* WEFT_TRACE_H */
