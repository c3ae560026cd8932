/*
 * weft_trace.c: the weft-trace command.
 *
 *   weft-trace TRACE [--json OUT.json] [--svg OUT.svg] [--summary]
 *                    [--no-addr2line]
 *
 * Reads a trace written by weft (WEFT_TRACE=path or weft_trace_write),
 * names task functions (the trace's symbol table, then addr2line for
 * "object+0xOFFSET" entries), rebuilds each worker's timeline and writes
 * the outputs asked for; with none asked for, the summary goes to stdout.
 * OUT "-" is stdout.
 *
 * Exit status: 0 success; 1 the trace could not be read or an output not
 * written (a partial output file is removed); 2 usage error.  Every
 * failure prints one "weft-trace: ..." line on stderr.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace_model.h"
#include "trace_out.h"
#include "trace_read.h"
#include "trace_sym.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "weft-trace"

enum { EXIT_USAGE = 2 };

struct options {
	const char *trace;
	const char *json;
	const char *svg;
	int summary;
	int addr2line;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " TRACE [--json OUT.json] [--svg OUT.svg] [--summary] [--no-addr2line]\n"
	        "\n"
	        "Read a weft scheduling trace (written with WEFT_TRACE=path) and write:\n"
	        "  --json OUT     Chrome Trace Event JSON (open in ui.perfetto.dev or chrome://tracing)\n"
	        "  --svg OUT      an SVG timeline: a lane per worker, steals, utilisation\n"
	        "  --summary      a text summary on stdout (the default when no output is given)\n"
	        "  --no-addr2line do not run addr2line for functions the trace could not name\n"
	        "OUT may be '-' for stdout.  Also: --help, --version.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return EXIT_USAGE;
}

/* Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	int i, only_files = 0;

	memset(o, 0, sizeof(*o));
	o->addr2line = 1;
	if (argc < 2)
		return usage_error("missing TRACE argument");
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *val = NULL, *name = NULL;

		if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
			if (o->trace)
				return usage_error("more than one TRACE given ('%s')", a);
			o->trace = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_files = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf(PROG " (weft) %s\n", PACKAGE_VERSION);
			return 0;
		}
		if (strcmp(a, "--summary") == 0) {
			o->summary = 1;
			continue;
		}
		if (strcmp(a, "--no-addr2line") == 0) {
			o->addr2line = 0;
			continue;
		}
		if (strncmp(a, "--json", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
			dst = &o->json;
			name = "--json";
			val = a[6] ? a + 7 : NULL;
		} else if (strncmp(a, "--svg", 5) == 0 && (a[5] == '\0' || a[5] == '=')) {
			dst = &o->svg;
			name = "--svg";
			val = a[5] ? a + 6 : NULL;
		} else {
			return usage_error("unknown option '%s'", a);
		}
		if (!val) {
			if (i + 1 >= argc)
				return usage_error("option '%s' needs an output file", name);
			val = argv[++i];
		}
		if (!*val)
			return usage_error("option '%s' needs a non-empty output file", name);
		if (*dst)
			return usage_error("option '%s' given twice", name);
		*dst = val;
	}
	if (!o->trace)
		return usage_error("missing TRACE argument");
	if (!o->json && !o->svg)
		o->summary = 1;
	return -1;
}

enum out_kind { OUT_JSON, OUT_SVG };

static int write_output(const char *path, enum out_kind kind, const struct options *o, const struct wt_trace *t,
                        const struct wt_model *m)
{
	int to_stdout = strcmp(path, "-") == 0;
	FILE *f = to_stdout ? stdout : fopen(path, "w");
	char err[256] = "";
	int rc, saved = 0;

	if (!f) {
		fprintf(stderr, PROG ": cannot create '%s': %s\n", path, strerror(errno));
		return 1;
	}
	errno = 0;
	rc = kind == OUT_JSON ? wt_write_json(f, t, m) : wt_write_svg(f, t, m, o->trace, err, sizeof err);
	if (rc == 0 && fflush(f) != 0)
		rc = -1;
	if (rc && !err[0])
		saved = errno ? errno : EIO;
	if (!to_stdout && fclose(f) != 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc) {
		if (err[0] && strcmp(err, "write error") != 0)
			fprintf(stderr, PROG ": cannot write '%s': %s\n", path, err);
		else
			fprintf(stderr, PROG ": cannot write '%s': %s\n", path, strerror(saved ? saved : EIO));
		if (!to_stdout)
			unlink(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct wt_trace t;
	struct wt_model m;
	char err[1024];
	int rc = parse_args(argc, argv, &o), status = 0;

	if (rc >= 0)
		return rc;
	if (wt_trace_load(o.trace, &t, err, sizeof err)) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	if (o.addr2line)
		wt_sym_resolve(&t, NULL);
	if (wt_model_build(&t, &m, err, sizeof err)) {
		fprintf(stderr, PROG ": '%s': %s\n", o.trace, err);
		wt_trace_free(&t);
		return 1;
	}
	if (o.json && write_output(o.json, OUT_JSON, &o, &t, &m))
		status = 1;
	if (o.svg && write_output(o.svg, OUT_SVG, &o, &t, &m))
		status = 1;
	if (o.summary && (wt_write_summary(stdout, &t, &m, o.trace) || fflush(stdout) != 0)) {
		fprintf(stderr, PROG ": cannot write the summary: %s\n", strerror(errno ? errno : EIO));
		status = 1;
	}
	wt_model_free(&m);
	wt_trace_free(&t);
	return status;
}
