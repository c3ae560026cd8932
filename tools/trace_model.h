/*
 * trace_model.h: what each worker was doing when, rebuilt from a trace's
 * events.  The JSON, SVG and summary writers all read this model.
 *
 * Each lane is replayed with a stack of open spans.  A BEGIN event pushes
 * one (TASK_BEGIN a task, i.e. "running"; SEARCH_BEGIN "searching"; PARK
 * "parked"; WAIT_BEGIN "waiting"; IO_SUBMIT "in I/O"), the matching END
 * pops it; the worker's state at any time is the state of the innermost
 * open span, "idle" when none is open.  So a task that waits and helps
 * shows as running, then waiting, then running (the helped task), then
 * waiting, then running again; nesting follows the program.
 *
 * Repairs, never refusals:
 *   - An END whose BEGIN is not in the lane (the ring dropped it, or it
 *     happened before tracing started) means that span was open from the
 *     start of the lane's data: the lane is replayed twice, the first pass
 *     collecting such spans, the second starting with them already open
 *     (flag WT_SL_BEGIN_LOST).  This does not apply to IO_COMPLETE, which
 *     may legitimately be seen on another worker than its IO_SUBMIT; an
 *     unmatched IO_COMPLETE is kept as an instant.
 *   - An END that matches a span below the innermost closes the spans
 *     above it at the same time (WT_SL_END_FORCED, counted in unbalanced).
 *   - Spans still open at the end of the trace end there (WT_SL_END_OPEN).
 *   - Before the first event of a lane whose ring dropped events nothing
 *     is known: state "no data".
 *   - Unknown event types are counted and otherwise ignored.
 * Times are ns from the trace origin; every lane covers [0, span].
 */
#ifndef WEFT_TRACE_MODEL_H
#define WEFT_TRACE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "trace_read.h"

enum wt_state {
	WT_ST_IDLE,
	WT_ST_RUNNING,
	WT_ST_SEARCHING,
	WT_ST_PARKED,
	WT_ST_WAITING,
	WT_ST_IO,
	WT_ST_NODATA,
	WT_NSTATES
};

#define WT_SRC_UNKNOWN 255u

enum {
	WT_SL_BEGIN_LOST = 1, /* open since the start of the lane's data */
	WT_SL_END_OPEN = 2,   /* still open at the end of the trace */
	WT_SL_END_FORCED = 4, /* closed by an outer span's END */
	WT_SL_STOLE = 8,      /* searching that ended with a steal */
};

/* One span: a task, or a searching/parked/waiting/I-O state. */
struct wt_slice {
	double start, end;
	uint64_t fn;     /* tasks: function address (0 if BEGIN lost) */
	uint32_t depth;  /* 0 = outermost */
	uint8_t state;   /* enum wt_state; WT_ST_RUNNING for tasks */
	uint8_t source;  /* tasks: enum weft_trace_source or WT_SRC_UNKNOWN */
	uint8_t flags;
};

/* A maximal stretch of one state (adjacent segments differ). */
struct wt_seg {
	double start, end;
	uint8_t state;
};

/* Steals, fiber events, unmatched IO_COMPLETE. */
struct wt_instant {
	double t;
	uint64_t arg;
	uint32_t type;
	uint32_t aux;
};

struct wt_lane_model {
	uint32_t worker;
	double data_start;         /* before it: no data (ring dropped) */
	struct wt_slice *slices;   /* in order of start, parents first */
	size_t nslices;
	struct wt_seg *segs;       /* cover [0, span] in order */
	size_t nsegs;
	struct wt_instant *instants;
	size_t ninstants;
	double time[WT_NSTATES];   /* ns spent in each state */
	size_t tasks;              /* TASK_BEGIN events */
	size_t tasks_by_src[3];    /* ... by enum weft_trace_source */
	size_t steals;             /* STEAL events (this worker the thief) */
	size_t stolen_from;        /* STEAL events naming this worker victim */
	size_t searches;           /* SEARCH_BEGIN events */
	size_t searches_stole;     /* of which ended with a steal */
	size_t unbalanced;         /* spans force-closed */
	size_t begin_lost;         /* spans open at the start of the data */
	size_t unknown_events;
};

struct wt_model {
	double span;               /* ns */
	uint32_t nworkers;
	struct wt_lane_model *lanes; /* lanes[w] is worker w */
	size_t bad_victims;        /* STEAL events naming no valid worker */
};

/* Build the model of t.  Returns 0, or -1 with a message in err. */
int wt_model_build(const struct wt_trace *t, struct wt_model *m, char *err, size_t errlen);

void wt_model_free(struct wt_model *m);

/* "running", "searching", ... */
const char *wt_state_name(enum wt_state s);

/* bins[i] = fraction of workers running, averaged over the i-th of nbins
 * equal parts of [0, span] (span 0: every bin is 0). */
void wt_model_utilisation(const struct wt_model *m, double *bins, size_t nbins);

#endif /* WEFT_TRACE_MODEL_H */
