/*
 * trace_out.h: weft-trace's three outputs (one file each) and the text
 * helpers they share (trace_text.c).
 *
 * Every writer takes the loaded trace (for symbol names and header facts)
 * and its model (for spans and states), writes to an open stream, and
 * returns 0, or -1 when the stream failed (ferror) or, for the SVG, when
 * the trace cannot be drawn (message in err).  Names from the trace are
 * arbitrary bytes: they are escaped for JSON or XML and invalid UTF-8 is
 * replaced, so the outputs always parse.
 */
#ifndef WEFT_TRACE_OUT_H
#define WEFT_TRACE_OUT_H

#include <stddef.h>
#include <stdio.h>

#include "trace_model.h"
#include "trace_read.h"

/* Most workers the SVG timeline draws (one lane each). */
#define WT_SVG_MAX_WORKERS 1024

/* Chrome Trace Event JSON (Perfetto, chrome://tracing). */
int wt_write_json(FILE *f, const struct wt_trace *t, const struct wt_model *m);

/* Self-contained SVG timeline, ~1200 px wide; title names the trace. */
int wt_write_svg(FILE *f, const struct wt_trace *t, const struct wt_model *m, const char *title, char *err,
                 size_t errlen);

/* Plain-text summary. */
int wt_write_summary(FILE *f, const struct wt_trace *t, const struct wt_model *m, const char *title);

/* --- trace_text.c ---------------------------------------------------- */

/* A duration for people: "850 ns", "12.3 us", "1.25 ms", "2.50 s". */
void wt_fmt_dur(char *buf, size_t n, double ns);

/* Length of the valid UTF-8 sequence at p (at most left bytes), or 0. */
size_t wt_utf8_len(const unsigned char *p, size_t left);

/* s as the body of a JSON string (no quotes). */
void wt_put_json(FILE *f, const char *s);

/* s as XML character data / attribute value. */
void wt_put_xml(FILE *f, const char *s);

#endif /* WEFT_TRACE_OUT_H */
