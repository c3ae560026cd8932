/*
 * trace_format.h: the on-disk format of a weft scheduling trace, shared by
 * the writer (runtime/trace.c) and the reader (tools/).  Never installed.
 *
 * Layout, native byte order (the reader checks the magic and refuses a
 * file written on a machine of the other endianness):
 *   struct weft_trace_header
 *   nworkers x { struct weft_trace_lane, lane.nevents x struct weft_trace_event }
 *   nsyms x { struct weft_trace_sym, name bytes (len, no NUL) }
 * Events of a lane are in time order.  Timestamps are in ticks of a
 * monotonic clock, ticks_per_sec of them a second; t0 is the runtime's start.
 */
#ifndef WEFT_TRACE_FORMAT_H
#define WEFT_TRACE_FORMAT_H

#include <stdint.h>

#define WEFT_TRACE_MAGIC "WEFTTRC\1"
#define WEFT_TRACE_VERSION 1

struct weft_trace_header {
	char magic[8];
	uint32_t version;
	uint32_t nworkers;
	uint64_t ticks_per_sec;
	uint64_t t0;
	uint64_t nsyms;
};

struct weft_trace_lane {
	uint32_t worker;
	uint32_t reserved;
	uint64_t nevents;
	uint64_t dropped; /* older events overwritten in the ring */
};

struct weft_trace_event {
	uint64_t ts;
	uint64_t arg;  /* TASK_BEGIN, STEAL: the task function's address */
	uint32_t type; /* enum weft_trace_type */
	uint32_t aux;  /* TASK_BEGIN: enum weft_trace_source; STEAL: victim */
};

struct weft_trace_sym {
	uint64_t addr;
	uint32_t len;
	uint32_t reserved;
};

/* A worker is in one state at a time; these events switch it.  A task's
 * begin/end nest inside whatever state surrounds them. */
enum weft_trace_type {
	WEFT_EV_TASK_BEGIN = 1,
	WEFT_EV_TASK_END = 2,
	WEFT_EV_STEAL = 3,        /* instant: took a task from worker aux */
	WEFT_EV_SEARCH_BEGIN = 4, /* idle, stealing */
	WEFT_EV_SEARCH_END = 5,
	WEFT_EV_PARK = 6,         /* asleep */
	WEFT_EV_UNPARK = 7,
	WEFT_EV_WAIT_BEGIN = 8,   /* in weft_wait/future wait with nothing local */
	WEFT_EV_WAIT_END = 9,
	/* Reserved for the event layer: fibers and I/O. */
	WEFT_EV_FIBER_SUSPEND = 16,
	WEFT_EV_FIBER_RESUME = 17,
	WEFT_EV_IO_SUBMIT = 18,
	WEFT_EV_IO_COMPLETE = 19,
};

enum weft_trace_source {
	WEFT_SRC_LOCAL = 0,    /* own deque, from the worker loop */
	WEFT_SRC_STOLEN = 1,
	WEFT_SRC_INJECTED = 2, /* submitted from outside */
};

_Static_assert(sizeof(struct weft_trace_event) == 24, "event layout");
_Static_assert(sizeof(struct weft_trace_header) == 40, "header layout");
_Static_assert(sizeof(struct weft_trace_lane) == 24, "lane layout");

#endif /* WEFT_TRACE_FORMAT_H */
