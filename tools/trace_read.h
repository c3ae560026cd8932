/*
 * trace_read.h: loading a weft scheduling trace (runtime/trace_format.h)
 * into memory, for weft-trace and its tests.
 *
 * The loader never trusts the file: every count is checked against the
 * bytes that are actually there (size_t arithmetic with overflow checks)
 * before anything is allocated, so a truncated or corrupted file yields an
 * error string, never a crash or a huge allocation.  What is structurally
 * sound but odd is repaired and counted rather than refused:
 *   - timestamps that go backwards within a lane are clamped to the
 *     previous one (wt_lane.clamped),
 *   - duplicate symbol addresses keep the first name (wt_trace.dup_syms).
 * Times are converted to nanoseconds from the trace origin: the header's t0
 * (the runtime's start), or the earliest event if one is older than t0.
 */
#ifndef WEFT_TRACE_READ_H
#define WEFT_TRACE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "trace_format.h"

struct wt_event {
	double t;      /* ns from the trace origin */
	uint64_t ts;   /* raw ticks, as recorded (after clamping) */
	uint64_t arg;
	uint32_t type; /* enum weft_trace_type, or an unknown value */
	uint32_t aux;
};

struct wt_lane {
	uint32_t worker;  /* lane.worker, < nworkers, unique */
	uint64_t dropped; /* events overwritten in the ring before the first */
	size_t nevents;
	struct wt_event *events;
	size_t clamped;   /* timestamps raised to keep the lane in order */
};

struct wt_sym {
	uint64_t addr;
	char *name;   /* NUL-terminated copy; may be replaced by wt_sym_resolve */
	int resolved; /* 1 once name came from addr2line */
};

struct wt_trace {
	uint32_t version;
	uint32_t nworkers;
	uint64_t ticks_per_sec;
	uint64_t t0;
	uint64_t origin;   /* ticks that map to t = 0 */
	double span;       /* ns from origin to the latest event (0 if none) */
	size_t nevents;    /* over all lanes */
	uint64_t dropped;  /* over all lanes (saturating) */
	struct wt_lane *lanes; /* nworkers of them, in file order */
	size_t nsyms;      /* distinct addresses kept */
	struct wt_sym *syms; /* sorted by addr */
	size_t dup_syms;
};

/* Parse a trace held in memory.  Returns 0 and fills *t (free it with
 * wt_trace_free), or -1 with a message in err (never longer than errlen). */
int wt_trace_parse(const void *buf, size_t len, struct wt_trace *t, char *err, size_t errlen);

/* Read and parse the file at path.  Errors name the file. */
int wt_trace_load(const char *path, struct wt_trace *t, char *err, size_t errlen);

void wt_trace_free(struct wt_trace *t);

/* The symbol entry for exactly addr, or NULL. */
const struct wt_sym *wt_trace_sym(const struct wt_trace *t, uint64_t addr);

/* A display name for a task function address: its symbol's name, else
 * "0x..." written into buf (at least 24 bytes). */
const char *wt_trace_fn_name(const struct wt_trace *t, uint64_t addr, char *buf, size_t buflen);

/* Name of an event type ("TASK_BEGIN", ...), or NULL if unknown. */
const char *wt_event_type_name(uint32_t type);

#endif /* WEFT_TRACE_READ_H */
