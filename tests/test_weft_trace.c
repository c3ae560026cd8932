/*
 * test_weft_trace.c: the trace viewer, tools/weft-trace.
 *
 * In process (the tool's sources other than main are compiled in):
 *   - the reader: a synthetic trace built here after runtime/trace_format.h
 *     reads back exactly; every truncation, bad magic/version/byte order,
 *     impossible counts and a seeded random corruption campaign end in an
 *     error string or a trace that every writer handles, never a crash;
 *   - the model: states, nesting, spans open before a dropped ring's data,
 *     steals credited to searches and victims;
 *   - the outputs: the JSON parses with a strict RFC 8259 checker written
 *     here and has one track (thread_name metadata, tid) per worker; the
 *     SVG is well-formed (tag balance, entities), one lane group a worker;
 *     the summary has its sections;
 *   - symbol names: "object+0xOFFSET" resolved through addr2line (skipped
 *     where there is no addr2line).
 * The command (path in WEFT_TRACE_TOOL, set by tests/trace.mk; else
 * ../tools/weft-trace next to this program): usage and input errors give a
 * "weft-trace: " message on stderr and a non-zero exit (never a signal);
 * good input writes the outputs.
 * End to end: a small weft program traced through cfg.trace_path (the
 * runtime's writer) reads back, names its task function, and converts.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <ctype.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace_format.h"
#include "trace_model.h"
#include "trace_out.h"
#include "trace_read.h"
#include "trace_sym.h"

/* ------------------------------------------------------------------ */
/* Building traces                                                      */

struct tb {
	unsigned char *buf;
	size_t len, cap;
};

static void tb_put(struct tb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->buf = realloc(b->buf, b->cap);
		cr_assert_not_null(b->buf);
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void tb_header(struct tb *b, uint32_t nworkers, uint64_t tps, uint64_t t0, uint64_t nsyms)
{
	struct weft_trace_header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, WEFT_TRACE_MAGIC, 8);
	h.version = WEFT_TRACE_VERSION;
	h.nworkers = nworkers;
	h.ticks_per_sec = tps;
	h.t0 = t0;
	h.nsyms = nsyms;
	tb_put(b, &h, sizeof h);
}

static void tb_lane(struct tb *b, uint32_t worker, uint64_t nevents, uint64_t dropped)
{
	struct weft_trace_lane l = { worker, 0, nevents, dropped };
	tb_put(b, &l, sizeof l);
}

static void tb_ev(struct tb *b, uint64_t ts, uint32_t type, uint32_t aux, uint64_t arg)
{
	struct weft_trace_event e = { ts, arg, type, aux };
	tb_put(b, &e, sizeof e);
}

static void tb_sym(struct tb *b, uint64_t addr, const char *name)
{
	struct weft_trace_sym s = { addr, (uint32_t)strlen(name), 0 };
	tb_put(b, &s, sizeof s);
	tb_put(b, name, strlen(name));
}

#define FN_A 0x401000u
#define FN_B 0x401200u
#define FN_C 0x401400u

/*
 * Three workers, 1 tick = 1 ns, t0 = 500 (so times below are t - 500):
 *   worker 0: task A (injected) 1000..8000; inside it waits 2000..6000
 *             and helps with task B (stolen) 3000..5000; searches
 *             8000..9000, parks 9000..20000.
 *   worker 1: searches 1500..2500, steals B from worker 0 at 2500 (inside
 *             the search), runs B 2600..7000, parks from 7000 to the end.
 *   worker 2: its ring dropped 5 events: it starts inside a task whose
 *             begin is lost (ends 4000), searches 4000..5000, I/O
 *             5000..6000, runs C (local) 6000..10000.
 * Symbols: A, B named; C "object+0xOFFSET" of an object that does not
 * exist (stays as it is); B listed twice (first wins).
 */
static void sample(struct tb *b)
{
	memset(b, 0, sizeof(*b));
	tb_header(b, 3, 1000000000u, 500, 4);
	tb_lane(b, 0, 10, 0);
	tb_ev(b, 1000, WEFT_EV_TASK_BEGIN, WEFT_SRC_INJECTED, FN_A);
	tb_ev(b, 2000, WEFT_EV_WAIT_BEGIN, 0, 0);
	tb_ev(b, 3000, WEFT_EV_TASK_BEGIN, WEFT_SRC_STOLEN, FN_B);
	tb_ev(b, 5000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(b, 6000, WEFT_EV_WAIT_END, 0, 0);
	tb_ev(b, 8000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(b, 8000, WEFT_EV_SEARCH_BEGIN, 0, 0);
	tb_ev(b, 9000, WEFT_EV_SEARCH_END, 0, 0);
	tb_ev(b, 9000, WEFT_EV_PARK, 0, 0);
	tb_ev(b, 20000, WEFT_EV_UNPARK, 0, 0);
	tb_lane(b, 1, 6, 0);
	tb_ev(b, 1500, WEFT_EV_SEARCH_BEGIN, 0, 0);
	tb_ev(b, 2500, WEFT_EV_STEAL, 0, FN_B);
	tb_ev(b, 2500, WEFT_EV_SEARCH_END, 0, 0);
	tb_ev(b, 2600, WEFT_EV_TASK_BEGIN, WEFT_SRC_STOLEN, FN_B);
	tb_ev(b, 7000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(b, 7000, WEFT_EV_PARK, 0, 0);
	tb_lane(b, 2, 7, 5);
	tb_ev(b, 4000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(b, 4000, WEFT_EV_SEARCH_BEGIN, 0, 0);
	tb_ev(b, 5000, WEFT_EV_SEARCH_END, 0, 0);
	tb_ev(b, 5000, WEFT_EV_IO_SUBMIT, 0, 0);
	tb_ev(b, 6000, WEFT_EV_IO_COMPLETE, 0, 0);
	tb_ev(b, 6000, WEFT_EV_TASK_BEGIN, WEFT_SRC_LOCAL, FN_C);
	tb_ev(b, 10000, WEFT_EV_TASK_END, 0, 0);
	tb_sym(b, FN_B, "beta");
	tb_sym(b, FN_A, "alpha \"quoted\" <&>");
	tb_sym(b, FN_C, "/nonexistent/libobj.so+0x1234");
	tb_sym(b, FN_B, "beta-duplicate");
}

/* A bigger, random but well-formed trace: n workers, fork-join-like. */
static void random_trace(struct tb *b, uint32_t nworkers, size_t events_per_lane, uint64_t seed)
{
	uint64_t s = seed | 1;
	memset(b, 0, sizeof(*b));
	tb_header(b, nworkers, 2400000000u, 1000, 8);
	for (uint32_t w = 0; w < nworkers; w++) {
		uint64_t ts = 1000 + t_rand(&s) % 5000;
		size_t n = 0, depth = 0;
		struct tb lane = { 0 };
		while (n + 4 <= events_per_lane) {
			unsigned r = (unsigned)(t_rand(&s) % 10);
			ts += 1 + t_rand(&s) % 20000;
			if (r < 4 && depth < 6) {
				tb_ev(&lane, ts, WEFT_EV_TASK_BEGIN, (uint32_t)(t_rand(&s) % 3), FN_A + 0x100 * (t_rand(&s) % 8));
				depth++;
				n++;
			} else if (r < 7 && depth > 0) {
				tb_ev(&lane, ts, WEFT_EV_TASK_END, 0, 0);
				depth--;
				n++;
			} else if (r == 7) {
				tb_ev(&lane, ts, WEFT_EV_SEARCH_BEGIN, 0, 0);
				if (nworkers > 1 && t_rand(&s) % 2) {
					uint32_t v = (uint32_t)(t_rand(&s) % nworkers);
					if (v == w)
						v = (v + 1) % nworkers;
					tb_ev(&lane, ts + 300, WEFT_EV_STEAL, v, FN_A + 0x100 * (t_rand(&s) % 8));
					n++;
				}
				tb_ev(&lane, ts + 500, WEFT_EV_SEARCH_END, 0, 0);
				ts += 500;
				n += 2;
			} else if (r == 8) {
				tb_ev(&lane, ts, WEFT_EV_WAIT_BEGIN, 0, 0);
				tb_ev(&lane, ts + 2000, WEFT_EV_WAIT_END, 0, 0);
				ts += 2000;
				n += 2;
			} else {
				tb_ev(&lane, ts, WEFT_EV_PARK, 0, 0);
				tb_ev(&lane, ts + 50000, WEFT_EV_UNPARK, 0, 0);
				ts += 50000;
				n += 2;
			}
		}
		tb_lane(b, w, n, w % 2 ? 100 : 0);
		tb_put(b, lane.buf, lane.len);
		free(lane.buf);
	}
	for (unsigned i = 0; i < 8; i++) {
		char name[32];
		snprintf(name, sizeof name, "task_fn_%u", i);
		tb_sym(b, FN_A + 0x100 * i, name);
	}
}

/* ------------------------------------------------------------------ */
/* Files and the command                                                */

static char tmpdir_[256];

static const char *tmpdir(void)
{
	if (!tmpdir_[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir_, sizeof tmpdir_, "%s/weft-trace-test-XXXXXX", base && *base ? base : "/tmp");
		cr_assert_not_null(mkdtemp(tmpdir_), "mkdtemp: %s", strerror(errno));
	}
	return tmpdir_;
}

static char *tmpfile_path(const char *name)
{
	char *p = NULL;
	cr_assert_gt(asprintf(&p, "%s/%s", tmpdir(), name), 0);
	return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(p, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	do {
		if (cap - n < 4096) {
			cap = cap * 2 + 8192;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static void rm_tree(void)
{
	if (tmpdir_[0]) {
		char *cmd = NULL;
		if (asprintf(&cmd, "rm -rf '%s'", tmpdir_) > 0 && system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir_);
		free(cmd);
		tmpdir_[0] = '\0';
	}
}

static char *tool_path(void)
{
	const char *env = getenv("WEFT_TRACE_TOOL");
	char self[4096], *p = NULL;
	ssize_t n;

	if (env && *env)
		return strdup(env);
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if (asprintf(&p, "%s/../tools/weft-trace", dirname(self)) < 0)
		return NULL;
	return p;
}

struct run_result {
	int status; /* from waitpid */
	char *out, *err;
};

/* Run weft-trace with args (NULL-terminated). */
static struct run_result run_tool(const char *const *args)
{
	struct run_result r = { 0, NULL, NULL };
	char *tool = tool_path(), *outp = tmpfile_path("stdout.txt"), *errp = tmpfile_path("stderr.txt");
	const char *argv[32];
	size_t n = 0;
	pid_t pid;

	if (!tool || access(tool, X_OK) != 0)
		cr_skip_test("weft-trace not built at %s (set WEFT_TRACE_TOOL)", tool ? tool : "?");
	argv[n++] = tool;
	while (*args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0)
			_exit(126);
		dup2(o, 1);
		dup2(e, 2);
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &r.status, 0) < 0)
		cr_assert_eq(errno, EINTR);
	r.out = read_file(outp, NULL);
	r.err = read_file(errp, NULL);
	free(tool);
	free(outp);
	free(errp);
	return r;
}

static void run_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
}

/* The command failed cleanly: a normal exit with status want, one
 * "weft-trace: " message on stderr that contains what. */
static void expect_failure(const char *const *args, int want, const char *what)
{
	struct run_result r = run_tool(args);
	cr_assert(WIFEXITED(r.status), "weft-trace %s did not exit normally (signal %d); stderr: %s", args[0],
	          WIFSIGNALED(r.status) ? WTERMSIG(r.status) : 0, r.err);
	cr_assert_eq(WEXITSTATUS(r.status), want, "exit status %d, want %d; stderr: %s", WEXITSTATUS(r.status),
	             want, r.err);
	cr_assert(strncmp(r.err, "weft-trace: ", 12) == 0, "stderr does not start with 'weft-trace: ': '%s'", r.err);
	cr_assert_not_null(strstr(r.err, what), "stderr '%s' does not mention '%s'", r.err, what);
	run_free(&r);
}

/* Every suite removes its temporary directory after each test. */
TestSuite(trace_reader, .fini = rm_tree);
TestSuite(trace_model, .fini = rm_tree);
TestSuite(trace_output, .fini = rm_tree);
TestSuite(trace_sym, .fini = rm_tree);
TestSuite(trace_cli, .fini = rm_tree);
TestSuite(trace_e2e, .fini = rm_tree);

/* ------------------------------------------------------------------ */
/* A strict JSON checker (RFC 8259) with just enough of a tree to look  */
/* at traceEvents.                                                       */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype type;
	double num;
	char *str;        /* J_STR, decoded (escapes kept verbatim) */
	size_t n;         /* J_ARR / J_OBJ */
	struct jv *items;
	char **keys;      /* J_OBJ */
};

struct jp {
	const char *p, *end;
	const char *error;
	int depth;
};

static void jv_free(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

static void j_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int j_fail(struct jp *j, const char *why)
{
	if (!j->error)
		j->error = why;
	return -1;
}

static int j_value(struct jp *j, struct jv *v);

static int j_string(struct jp *j, char **out)
{
	const char *start;
	if (j->p >= j->end || *j->p != '"')
		return j_fail(j, "expected a string");
	start = ++j->p;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		if (c < 0x20)
			return j_fail(j, "control character in a string");
		if (c == '\\') {
			j->p++;
			if (j->p >= j->end)
				return j_fail(j, "unterminated escape");
			if (*j->p == 'u') {
				for (int k = 1; k <= 4; k++)
					if (j->p + k >= j->end || !isxdigit((unsigned char)j->p[k]))
						return j_fail(j, "bad \\u escape");
				j->p += 5;
			} else if (strchr("\"\\/bfnrt", *j->p)) {
				j->p++;
			} else {
				return j_fail(j, "bad escape");
			}
		} else if (c >= 0x80) {
			size_t n = wt_utf8_len((const unsigned char *)j->p, (size_t)(j->end - j->p));
			/* Independent check of the lead byte range too. */
			if (n == 0 || c < 0xc2 || c > 0xf4)
				return j_fail(j, "invalid UTF-8 in a string");
			j->p += n;
		} else {
			j->p++;
		}
	}
	if (j->p >= j->end)
		return j_fail(j, "unterminated string");
	if (out)
		*out = strndup(start, (size_t)(j->p - start));
	j->p++;
	return 0;
}

static int j_number(struct jp *j, double *out)
{
	const char *s = j->p;
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || !isdigit((unsigned char)*j->p))
		return j_fail(j, "bad number");
	if (*j->p == '0') {
		j->p++;
		if (j->p < j->end && isdigit((unsigned char)*j->p))
			return j_fail(j, "leading zero");
	} else {
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return j_fail(j, "bad fraction");
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return j_fail(j, "bad exponent");
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	{
		char tmp[64];
		size_t n = (size_t)(j->p - s);
		if (n >= sizeof tmp)
			n = sizeof tmp - 1;
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		*out = strtod(tmp, NULL);
	}
	return 0;
}

static int j_lit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return j_fail(j, "bad literal");
	j->p += n;
	return 0;
}

static void j_push(struct jv *v, struct jv *item, char *key)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
	cr_assert_not_null(v->items);
	v->items[v->n] = *item;
	if (v->type == J_OBJ) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
		cr_assert_not_null(v->keys);
		v->keys[v->n] = key;
	}
	v->n++;
}

static int j_container(struct jp *j, struct jv *v, char close)
{
	j->p++;
	if (++j->depth > 64)
		return j_fail(j, "nested too deep");
	j_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		struct jv item;
		char *key = NULL;
		memset(&item, 0, sizeof item);
		j_ws(j);
		if (close == '}') {
			if (j_string(j, &key))
				return -1;
			j_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				return j_fail(j, "expected ':'");
			}
			j->p++;
		}
		if (j_value(j, &item)) {
			free(key);
			jv_free(&item);
			return -1;
		}
		j_push(v, &item, key);
		j_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			j->depth--;
			return 0;
		}
		return j_fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int j_value(struct jp *j, struct jv *v)
{
	memset(v, 0, sizeof(*v));
	j_ws(j);
	if (j->p >= j->end)
		return j_fail(j, "unexpected end");
	switch (*j->p) {
	case '{': v->type = J_OBJ; return j_container(j, v, '}');
	case '[': v->type = J_ARR; return j_container(j, v, ']');
	case '"': v->type = J_STR; return j_string(j, &v->str);
	case 't': v->type = J_BOOL; return j_lit(j, "true");
	case 'f': v->type = J_BOOL; return j_lit(j, "false");
	case 'n': v->type = J_NULL; return j_lit(j, "null");
	default: v->type = J_NUM; return j_number(j, &v->num);
	}
}

/* Parse text (len bytes) strictly; on failure *why says where. */
static int json_parse(const char *text, size_t len, struct jv *root, char *why, size_t whylen)
{
	struct jp j = { text, text + len, NULL, 0 };
	if (j_value(&j, root) == 0) {
		j_ws(&j);
		if (j.p == j.end)
			return 0;
		j_fail(&j, "trailing characters");
	}
	snprintf(why, whylen, "%s at offset %zu", j.error, (size_t)(j.p - text));
	jv_free(root);
	return -1;
}

static const struct jv *jget(const struct jv *o, const char *key)
{
	if (o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return &o->items[i];
	return NULL;
}

/* The checks every JSON output must pass: valid, traceEvents of objects
 * with ph/pid, one thread_name per worker (tids 0..n-1, "worker N"), and
 * every per-thread event on one of those tids. */
static void check_json(const char *text, size_t len, uint32_t nworkers)
{
	struct jv root;
	char why[128];
	const struct jv *evs, *unit;
	unsigned char *named = calloc(nworkers + 1, 1);
	size_t nnamed = 0;

	cr_assert_eq(json_parse(text, len, &root, why, sizeof why), 0, "invalid JSON: %s", why);
	cr_assert_eq(root.type, J_OBJ);
	evs = jget(&root, "traceEvents");
	cr_assert(evs && evs->type == J_ARR, "no traceEvents array");
	unit = jget(&root, "displayTimeUnit");
	cr_assert(unit && unit->type == J_STR && strcmp(unit->str, "ns") == 0);
	for (size_t i = 0; i < evs->n; i++) {
		const struct jv *e = &evs->items[i], *ph = jget(e, "ph"), *pid = jget(e, "pid"), *tid = jget(e, "tid");
		const struct jv *ts = jget(e, "ts"), *name = jget(e, "name");
		cr_assert(ph && ph->type == J_STR && strlen(ph->str) == 1, "event %zu: no ph", i);
		cr_assert(pid && pid->type == J_NUM && pid->num == 1.0, "event %zu: pid", i);
		cr_assert(name && name->type == J_STR, "event %zu: no name", i);
		if (strchr("XisfBE", ph->str[0])) {
			cr_assert(tid && tid->type == J_NUM && tid->num >= 0 && tid->num < nworkers,
			          "event %zu (%s): tid not a worker", i, ph->str);
			cr_assert(ts && ts->type == J_NUM && ts->num >= 0, "event %zu: ts", i);
		}
		if (ph->str[0] == 'X') {
			const struct jv *dur = jget(e, "dur");
			cr_assert(dur && dur->type == J_NUM && dur->num >= 0, "event %zu: dur", i);
		}
		if (ph->str[0] == 'M' && strcmp(name->str, "thread_name") == 0) {
			const struct jv *args = jget(e, "args"), *tn = args ? jget(args, "name") : NULL;
			char want[32];
			cr_assert(tid && tid->type == J_NUM && tid->num >= 0 && tid->num < nworkers);
			cr_assert(!named[(size_t)tid->num], "tid %.0f named twice", tid->num);
			named[(size_t)tid->num] = 1;
			nnamed++;
			snprintf(want, sizeof want, "worker %.0f", tid->num);
			cr_assert(tn && tn->type == J_STR && strcmp(tn->str, want) == 0, "thread name");
		}
	}
	cr_assert_eq(nnamed, nworkers, "%zu thread_name tracks for %u workers", nnamed, nworkers);
	free(named);
	jv_free(&root);
}

/* ------------------------------------------------------------------ */
/* A small XML well-formedness checker for the SVG                      */

static void check_svg(const char *s, size_t len, uint32_t nworkers)
{
	const char *p = s, *end = s + len;
	char stack[64][32];
	int depth = 0, roots = 0;
	size_t lanes = 0;

	cr_assert(len > 20 && strncmp(s, "<svg", 4) == 0, "SVG does not start with <svg");
	cr_assert(strcmp(s + len - 7, "</svg>\n") == 0, "SVG does not end with </svg>");
	while (p < end) {
		if (*p == '<') {
			if (strncmp(p, "<!--", 4) == 0) {
				const char *c = strstr(p, "-->");
				cr_assert_not_null(c, "unterminated comment");
				p = c + 3;
				continue;
			}
			int closing = p[1] == '/';
			const char *n = p + 1 + closing, *q = n;
			while (q < end && (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_'))
				q++;
			cr_assert(q > n, "tag without a name at offset %zu", (size_t)(p - s));
			char name[32];
			size_t nl = (size_t)(q - n) < sizeof name - 1 ? (size_t)(q - n) : sizeof name - 1;
			memcpy(name, n, nl);
			name[nl] = '\0';
			/* Attributes: name="value" pairs, values without '<'. */
			while (q < end && *q != '>' && !(q[0] == '/' && q[1] == '>')) {
				if (*q == '"') {
					const char *e = memchr(q + 1, '"', (size_t)(end - q - 1));
					cr_assert_not_null(e, "unterminated attribute");
					cr_assert_null(memchr(q + 1, '<', (size_t)(e - q - 1)), "'<' in an attribute");
					q = e + 1;
				} else {
					q++;
				}
			}
			cr_assert(q < end, "unterminated tag <%s>", name);
			if (closing) {
				cr_assert(depth > 0 && strcmp(stack[depth - 1], name) == 0, "</%s> does not close <%s>", name,
				          depth ? stack[depth - 1] : "(nothing)");
				depth--;
			} else if (*q == '/') {
				q++;
				if (depth == 0)
					roots++;
			} else {
				cr_assert_lt(depth, 64);
				if (depth == 0)
					roots++;
				strcpy(stack[depth++], name);
				if (strcmp(name, "g") == 0 && strncmp(n, "g class=\"lane\"", 14) == 0)
					lanes++;
			}
			p = q + 1;
		} else if (*p == '&') {
			const char *semi = memchr(p, ';', (size_t)(end - p) < 10 ? (size_t)(end - p) : 10);
			cr_assert_not_null(semi, "bare '&' at offset %zu", (size_t)(p - s));
			cr_assert(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
			              strncmp(p, "&quot;", 6) == 0 || strncmp(p, "&apos;", 6) == 0 || p[1] == '#',
			          "unknown entity at offset %zu", (size_t)(p - s));
			p = semi + 1;
		} else {
			p++;
		}
	}
	cr_assert_eq(depth, 0, "unclosed <%s>", depth ? stack[depth - 1] : "");
	cr_assert_eq(roots, 1, "%d root elements", roots);
	cr_assert_eq(lanes, nworkers, "%zu lane groups for %u workers", lanes, nworkers);
}

/* ------------------------------------------------------------------ */
/* Writers into memory                                                  */

enum { W_JSON, W_SVG, W_SUMMARY };

static char *render(const struct wt_trace *t, const struct wt_model *m, int which, size_t *len)
{
	char *buf = NULL, err[256] = "";
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int rc;

	cr_assert_not_null(f);
	rc = which == W_JSON ? wt_write_json(f, t, m)
	     : which == W_SVG ? wt_write_svg(f, t, m, "test <trace> & \"co\"", err, sizeof err)
	                      : wt_write_summary(f, t, m, "test");
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rc, 0, "writer %d failed: %s", which, err);
	*len = n;
	return buf;
}

static void load_sample(struct wt_trace *t, struct wt_model *m)
{
	struct tb b;
	char err[256];
	sample(&b);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, t, err, sizeof err), 0, "%s", err);
	free(b.buf);
	cr_assert_eq(wt_model_build(t, m, err, sizeof err), 0, "%s", err);
}

/* Everything a loaded trace must survive. */
static void exercise(const struct wt_trace *t)
{
	struct wt_model m;
	char err[256];
	size_t len;
	char *s;

	cr_assert_eq(wt_model_build(t, &m, err, sizeof err), 0, "%s", err);
	s = render(t, &m, W_JSON, &len);
	check_json(s, len, t->nworkers);
	free(s);
	if (t->nworkers <= WT_SVG_MAX_WORKERS) {
		s = render(t, &m, W_SVG, &len);
		check_svg(s, len, t->nworkers);
		free(s);
	}
	s = render(t, &m, W_SUMMARY, &len);
	free(s);
	wt_model_free(&m);
}

#define NEAR(a, b) (fabs((a) - (b)) < 1e-6)

/* ------------------------------------------------------------------ */
/* Reader                                                               */

Test(trace_reader, round_trip)
{
	struct tb b;
	struct wt_trace t;
	char err[256], buf[32];

	sample(&b);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.version, WEFT_TRACE_VERSION);
	cr_assert_eq(t.nworkers, 3);
	cr_assert_eq(t.ticks_per_sec, 1000000000u);
	cr_assert_eq(t.t0, 500);
	cr_assert_eq(t.origin, 500);
	cr_assert(NEAR(t.span, 19500.0), "span %f", t.span);
	cr_assert_eq(t.nevents, 23);
	cr_assert_eq(t.dropped, 5);
	cr_assert_eq(t.lanes[0].nevents, 10);
	cr_assert_eq(t.lanes[1].nevents, 6);
	cr_assert_eq(t.lanes[2].nevents, 7);
	cr_assert_eq(t.lanes[2].dropped, 5);
	cr_assert_eq(t.lanes[1].events[1].type, WEFT_EV_STEAL);
	cr_assert_eq(t.lanes[1].events[1].aux, 0);
	cr_assert_eq(t.lanes[1].events[1].arg, FN_B);
	cr_assert_eq(t.lanes[1].events[1].ts, 2500);
	cr_assert(NEAR(t.lanes[1].events[1].t, 2000.0));
	cr_assert_eq(t.nsyms, 3);
	cr_assert_eq(t.dup_syms, 1);
	cr_assert(t.syms[0].addr < t.syms[1].addr && t.syms[1].addr < t.syms[2].addr);
	cr_assert_str_eq(wt_trace_fn_name(&t, FN_B, buf, sizeof buf), "beta");
	cr_assert_str_eq(wt_trace_fn_name(&t, FN_A, buf, sizeof buf), "alpha \"quoted\" <&>");
	cr_assert_str_eq(wt_trace_fn_name(&t, 0x1234, buf, sizeof buf), "0x1234");
	wt_trace_free(&t);
	free(b.buf);
}

Test(trace_reader, load_file)
{
	struct tb b;
	struct wt_trace t;
	char err[512], *path = tmpfile_path("sample.trace");

	sample(&b);
	write_file(path, b.buf, b.len);
	cr_assert_eq(wt_trace_load(path, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.nworkers, 3);
	wt_trace_free(&t);
	cr_assert_neq(wt_trace_load("/nonexistent/x.trace", &t, err, sizeof err), 0);
	cr_assert_not_null(strstr(err, "cannot open '/nonexistent/x.trace'"), "%s", err);
	cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
	cr_assert_neq(wt_trace_load(tmpdir(), &t, err, sizeof err), 0);
	free(path);
	free(b.buf);
	rm_tree();
}

Test(trace_reader, every_truncation_fails_cleanly)
{
	struct tb b;
	struct wt_trace t;
	char err[256];

	sample(&b);
	for (size_t len = 0; len < b.len; len++) {
		err[0] = '\0';
		cr_assert_neq(wt_trace_parse(b.buf, len, &t, err, sizeof err), 0, "prefix %zu parsed", len);
		cr_assert(err[0], "prefix %zu: no message", len);
		if (len > 0)
			cr_assert_not_null(strstr(err, "truncated"), "prefix %zu: '%s'", len, err);
		cr_assert_null(t.lanes);
	}
	free(b.buf);
}

static void expect_parse_error(const struct tb *b, const char *what)
{
	struct wt_trace t;
	char err[256] = "";
	cr_assert_neq(wt_trace_parse(b->buf, b->len, &t, err, sizeof err), 0, "parsed; expected '%s'", what);
	cr_assert_not_null(strstr(err, what), "'%s' does not mention '%s'", err, what);
}

Test(trace_reader, bad_headers)
{
	struct tb b;
	struct weft_trace_header *h;

	sample(&b);
	h = (struct weft_trace_header *)b.buf;
	h->magic[3] = 'X';
	expect_parse_error(&b, "bad magic");
	memcpy(h->magic, WEFT_TRACE_MAGIC, 8);
	h->version = 99;
	expect_parse_error(&b, "unsupported trace version 99");
	h->version = 0x01000000u;
	expect_parse_error(&b, "other byte order");
	h->version = WEFT_TRACE_VERSION;
	h->ticks_per_sec = 0;
	expect_parse_error(&b, "ticks_per_sec");
	h->ticks_per_sec = 1000;
	h->nworkers = UINT32_MAX;
	expect_parse_error(&b, "truncated");
	h->nworkers = 3;
	h->nsyms = UINT64_MAX;
	expect_parse_error(&b, "truncated");
	h->nsyms = 4;
	{
		struct tb empty = { NULL, 0, 0 };
		expect_parse_error(&empty, "empty");
	}
	{
		struct tb junk = { (unsigned char *)"hello, world, this is not a trace at all", 40, 0 };
		expect_parse_error(&junk, "bad magic");
	}
	free(b.buf);
}

Test(trace_reader, bad_lanes_and_symbols)
{
	struct tb b;
	struct weft_trace_lane *l;
	size_t lane1 = sizeof(struct weft_trace_header) + sizeof(struct weft_trace_lane) +
	               10 * sizeof(struct weft_trace_event);

	sample(&b);
	l = (struct weft_trace_lane *)(b.buf + lane1);
	cr_assert_eq(l->worker, 1);
	l->worker = 7;
	expect_parse_error(&b, "names worker 7");
	l->worker = 0;
	expect_parse_error(&b, "repeats worker 0");
	l->worker = 1;
	l->nevents = UINT64_MAX / 2;
	expect_parse_error(&b, "truncated");
	l->nevents = 6;
	/* A symbol name longer than the file. */
	{
		size_t syms = b.len - (4 * sizeof(struct weft_trace_sym) + strlen("beta") +
		                       strlen("alpha \"quoted\" <&>") + strlen("/nonexistent/libobj.so+0x1234") +
		                       strlen("beta-duplicate"));
		struct weft_trace_sym *s = (struct weft_trace_sym *)(b.buf + syms);
		cr_assert_eq(s->addr, FN_B);
		s->len = UINT32_MAX;
		expect_parse_error(&b, "truncated");
		s->len = 4;
	}
	/* Trailing bytes. */
	tb_put(&b, "xx", 2);
	expect_parse_error(&b, "unexpected bytes");
	free(b.buf);
}

Test(trace_reader, repairs_backwards_time)
{
	struct tb b = { 0 };
	struct wt_trace t;
	char err[256];

	tb_header(&b, 1, 1000, 0, 0);
	tb_lane(&b, 0, 3, 0);
	tb_ev(&b, 10, WEFT_EV_TASK_BEGIN, 0, 1);
	tb_ev(&b, 5, WEFT_EV_TASK_END, 0, 0);
	tb_ev(&b, 20, WEFT_EV_PARK, 0, 0);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.lanes[0].clamped, 1);
	cr_assert_eq(t.lanes[0].events[1].ts, 10);
	/* 1000 ticks/s: 1 tick = 1 ms. */
	cr_assert(NEAR(t.span, 20e6));
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);
}

Test(trace_reader, empty_traces)
{
	struct tb b = { 0 };
	struct wt_trace t;
	char err[256];

	tb_header(&b, 0, 1000000000u, 0, 0);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.nworkers, 0);
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);

	memset(&b, 0, sizeof b);
	tb_header(&b, 2, 1000000000u, 7, 0);
	tb_lane(&b, 1, 0, 0);
	tb_lane(&b, 0, 0, 12);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert(NEAR(t.span, 0.0));
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);
}

/* Seeded corruption: flip bytes, overwrite words with extremes; whatever
 * parses must go through the model and every writer. */
Test(trace_reader, random_corruption, .timeout = 120)
{
	struct tb good;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t rounds = t_size(3000, 300), parsed = 0;

	random_trace(&good, 3, 40, 42);
	for (size_t r = 0; r < rounds; r++) {
		unsigned char *buf = malloc(good.len);
		struct wt_trace t;
		char err[256];
		size_t len = good.len;
		int k = 1 + (int)(t_rand(&seed) % 4);

		memcpy(buf, good.buf, good.len);
		while (k--) {
			size_t at = (size_t)(t_rand(&seed) % good.len);
			switch (t_rand(&seed) % 4) {
			case 0: buf[at] ^= (unsigned char)(1u << (t_rand(&seed) % 8)); break;
			case 1: buf[at] = (unsigned char)t_rand(&seed); break;
			case 2:
				if (at + 8 <= good.len)
					memset(buf + at, 0xff, 8);
				break;
			default: len = at; break; /* truncate */
			}
		}
		if (wt_trace_parse(buf, len, &t, err, sizeof err) == 0) {
			parsed++;
			exercise(&t);
			wt_trace_free(&t);
		} else {
			cr_assert(err[0]);
		}
		free(buf);
	}
	/* Flips inside event payloads (time, type, arg) keep the file valid:
	 * some rounds must have gone all the way through. */
	cr_assert_gt(parsed, rounds / 20, "only %zu of %zu corrupted traces parsed", parsed, rounds);
	free(good.buf);
}

/* ------------------------------------------------------------------ */
/* Model                                                                */

Test(trace_model, states_and_nesting)
{
	struct wt_trace t;
	struct wt_model m;
	const struct wt_lane_model *l0, *l1, *l2;

	load_sample(&t, &m);
	cr_assert_eq(m.nworkers, 3);
	l0 = &m.lanes[0];
	l1 = &m.lanes[1];
	l2 = &m.lanes[2];
	/* Worker 0 (times - 500): idle 0..500, running 500..1500, waiting
	 * 1500..2500, running (helped B) 2500..4500, waiting 4500..5500,
	 * running 5500..7500, searching 7500..8500, parked 8500..19500. */
	cr_assert(NEAR(l0->time[WT_ST_IDLE], 500.0), "%f", l0->time[WT_ST_IDLE]);
	cr_assert(NEAR(l0->time[WT_ST_RUNNING], 1000.0 + 2000.0 + 2000.0), "%f", l0->time[WT_ST_RUNNING]);
	cr_assert(NEAR(l0->time[WT_ST_WAITING], 2000.0));
	cr_assert(NEAR(l0->time[WT_ST_SEARCHING], 1000.0));
	cr_assert(NEAR(l0->time[WT_ST_PARKED], 11000.0));
	cr_assert_eq(l0->nslices, 5); /* A, wait, B, search, park */
	cr_assert_eq(l0->slices[0].fn, FN_A);
	cr_assert_eq(l0->slices[0].source, WEFT_SRC_INJECTED);
	cr_assert_eq(l0->slices[0].depth, 0);
	cr_assert_eq(l0->slices[1].state, WT_ST_WAITING);
	cr_assert_eq(l0->slices[1].depth, 1);
	cr_assert_eq(l0->slices[2].fn, FN_B);
	cr_assert_eq(l0->slices[2].depth, 2);
	cr_assert(NEAR(l0->slices[0].end, 7500.0));
	cr_assert_eq(l0->tasks, 2);
	cr_assert_eq(l0->stolen_from, 1);
	cr_assert_eq(l0->searches, 1);
	cr_assert_eq(l0->searches_stole, 0);
	/* Segments cover [0, span] in order without gaps. */
	for (uint32_t w = 0; w < 3; w++) {
		const struct wt_lane_model *l = &m.lanes[w];
		double sum = 0.0;
		cr_assert(NEAR(l->segs[0].start, 0.0));
		cr_assert(NEAR(l->segs[l->nsegs - 1].end, m.span));
		for (size_t i = 0; i < l->nsegs; i++) {
			if (i)
				cr_assert(NEAR(l->segs[i].start, l->segs[i - 1].end) && l->segs[i].state != l->segs[i - 1].state);
			sum += l->segs[i].end - l->segs[i].start;
		}
		cr_assert(NEAR(sum, m.span));
	}
	/* Worker 1: the steal is credited to its search; its park is open. */
	cr_assert_eq(l1->steals, 1);
	cr_assert_eq(l1->searches, 1);
	cr_assert_eq(l1->searches_stole, 1);
	cr_assert(l1->slices[l1->nslices - 1].flags & WT_SL_END_OPEN);
	cr_assert(NEAR(l1->time[WT_ST_PARKED], 19500.0 - 6500.0));
	/* Worker 2: no data until its first event, then a task whose begin
	 * was dropped, search, I/O, task C. */
	cr_assert(NEAR(l2->data_start, 3500.0));
	cr_assert(NEAR(l2->time[WT_ST_NODATA], 3500.0));
	cr_assert_eq(l2->begin_lost, 1);
	cr_assert(l2->slices[0].flags & WT_SL_BEGIN_LOST);
	cr_assert(NEAR(l2->time[WT_ST_IO], 1000.0));
	cr_assert(NEAR(l2->time[WT_ST_RUNNING], 4000.0), "%f", l2->time[WT_ST_RUNNING]);
	cr_assert_eq(l2->tasks_by_src[WEFT_SRC_LOCAL], 1);
	cr_assert_eq(m.bad_victims, 0);
	wt_model_free(&m);
	wt_trace_free(&t);
}

Test(trace_model, unbalanced_events)
{
	struct tb b = { 0 };
	struct wt_trace t;
	struct wt_model m;
	char err[256];

	/* Begin lost for two nested spans (wait inside a task), an END that
	 * closes an outer span over an inner one, an IO_COMPLETE with no
	 * submit, an unknown type. */
	tb_header(&b, 1, 1000000000u, 0, 0);
	tb_lane(&b, 0, 8, 3);
	tb_ev(&b, 100, WEFT_EV_WAIT_END, 0, 0);
	tb_ev(&b, 200, WEFT_EV_TASK_END, 0, 0);
	tb_ev(&b, 300, WEFT_EV_TASK_BEGIN, 0, 5);
	tb_ev(&b, 400, WEFT_EV_SEARCH_BEGIN, 0, 0);
	tb_ev(&b, 500, WEFT_EV_TASK_END, 0, 0);
	tb_ev(&b, 600, WEFT_EV_IO_COMPLETE, 0, 0);
	tb_ev(&b, 700, 77, 0, 0);
	tb_ev(&b, 800, WEFT_EV_SEARCH_END, 0, 0);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(wt_model_build(&t, &m, err, sizeof err), 0, "%s", err);
	{
		const struct wt_lane_model *l = &m.lanes[0];
		cr_assert_eq(l->begin_lost, 3, "begin_lost %zu", l->begin_lost); /* task, wait, search */
		cr_assert_eq(l->slices[0].state, WT_ST_SEARCHING); /* outermost: its END came last */
		cr_assert_eq(l->slices[1].state, WT_ST_RUNNING);
		cr_assert_eq(l->slices[2].state, WT_ST_WAITING);
		cr_assert_eq(l->unbalanced, 1); /* the search inside task 5 */
		cr_assert_eq(l->unknown_events, 1);
		cr_assert_eq(l->ninstants, 1); /* the lone IO_COMPLETE */
		cr_assert(NEAR(l->time[WT_ST_NODATA], 100.0));
	}
	wt_model_free(&m);
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);
}

Test(trace_model, utilisation)
{
	struct wt_trace t;
	struct wt_model m;
	double bins[4], sum = 0.0, running = 0.0;

	load_sample(&t, &m);
	wt_model_utilisation(&m, bins, 4);
	for (int i = 0; i < 4; i++) {
		cr_assert(bins[i] >= 0.0 && bins[i] <= 1.0);
		sum += bins[i] * (m.span / 4) * 3;
	}
	for (int w = 0; w < 3; w++)
		running += m.lanes[w].time[WT_ST_RUNNING];
	cr_assert(fabs(sum - running) < 1e-3, "%f vs %f", sum, running);
	wt_model_free(&m);
	wt_trace_free(&t);
}

/* ------------------------------------------------------------------ */
/* Outputs                                                              */

Test(trace_output, json_one_track_per_worker)
{
	struct wt_trace t;
	struct wt_model m;
	size_t len;
	char *s;

	load_sample(&t, &m);
	s = render(&t, &m, W_JSON, &len);
	check_json(s, len, 3);
	/* Names escaped, nesting preserved, steal as instant and flow. */
	cr_assert_not_null(strstr(s, "\"name\":\"alpha \\\"quoted\\\" <&>\""), "%s", s);
	cr_assert_not_null(strstr(s, "\"ph\":\"i\""));
	cr_assert_not_null(strstr(s, "\"ph\":\"s\""));
	cr_assert_not_null(strstr(s, "\"ph\":\"f\""));
	cr_assert_not_null(strstr(s, "\"name\":\"running workers\""));
	cr_assert_not_null(strstr(s, "\"ts\":0.500,\"dur\":7.000,\"cat\":\"task\",\"name\":\"alpha"), "%s", s);
	free(s);
	wt_model_free(&m);
	wt_trace_free(&t);
}

Test(trace_output, json_checker_rejects_bad_json)
{
	static const char *bad[] = { "", "{", "{\"a\":1,}", "[1,]", "[01]", "{\"a\" 1}", "\"\x01\"", "[1.]",
		                     "[\"\\x\"]", "nul", "{} {}", "[\"\xff\"]", "{'a':1}", "[1e]" };
	static const char *good[] = { "{}", "[]", "[1.5e-3,-0,true,false,null]", "{\"a\":{\"b\":[\"\\u00e9\"]}}",
		                      "\"\xc3\xa9\"" };
	char why[128];
	struct jv v;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_neq(json_parse(bad[i], strlen(bad[i]), &v, why, sizeof why), 0, "accepted '%s'", bad[i]);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		cr_assert_eq(json_parse(good[i], strlen(good[i]), &v, why, sizeof why), 0, "rejected '%s': %s", good[i],
		             why);
		jv_free(&v);
	}
}

Test(trace_output, names_with_bad_bytes)
{
	struct tb b = { 0 };
	struct wt_trace t;
	char err[256];

	tb_header(&b, 1, 1000000000u, 0, 1);
	tb_lane(&b, 0, 2, 0);
	tb_ev(&b, 10, WEFT_EV_TASK_BEGIN, 0, 9);
	tb_ev(&b, 20, WEFT_EV_TASK_END, 0, 0);
	tb_sym(&b, 9, "bad\xff\xc3 \x01\t\"<x>\"&\xef\xbf\xbe\xed\xa0\x80 ok \xe2\x82\xac");
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);
}

Test(trace_output, svg_lanes_and_wellformed)
{
	struct wt_trace t;
	struct wt_model m;
	size_t len;
	char *s;

	load_sample(&t, &m);
	s = render(&t, &m, W_SVG, &len);
	check_svg(s, len, 3);
	cr_assert_not_null(strstr(s, ">worker 0</text>"));
	cr_assert_not_null(strstr(s, ">worker 2</text>"));
	cr_assert_not_null(strstr(s, "utilisation"));
	cr_assert_not_null(strstr(s, "running (in a task)")); /* legend */
	cr_assert_not_null(strstr(s, " us</text>"));           /* axis: 19.5 us span */
	cr_assert_not_null(strstr(s, "marker-end=\"url(#arrow)\"")); /* the steal */
	cr_assert_not_null(strstr(s, "test &lt;trace&gt; &amp; &quot;co&quot;"));
	cr_assert_null(strstr(s, "href"), "not self-contained");
	free(s);
	wt_model_free(&m);
	wt_trace_free(&t);
}

Test(trace_output, big_random_trace, .timeout = 120)
{
	struct tb b;
	struct wt_trace t;
	char err[256];

	random_trace(&b, 16, t_size(20000, 2000), 7);
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	exercise(&t);
	wt_trace_free(&t);
	free(b.buf);
}

Test(trace_output, summary_sections)
{
	struct wt_trace t;
	struct wt_model m;
	size_t len;
	char *s;

	load_sample(&t, &m);
	s = render(&t, &m, W_SUMMARY, &len);
	cr_assert_not_null(strstr(s, "3 workers, span 19.5 us"), "%s", s);
	cr_assert_not_null(strstr(s, "Per worker"));
	cr_assert_not_null(strstr(s, "Longest idle gaps"));
	cr_assert_not_null(strstr(s, "worker 0       12.0 us  from 7.50 us"), "%s", s); /* search + park */
	cr_assert_not_null(strstr(s, "at least 1 ms idle without an event"), "%s", s);
	cr_assert_not_null(strstr(strstr(s, "Silences"), "):\n  none\n"), "%s", s); /* all in us */
	cr_assert_not_null(strstr(s, "Steals"));
	cr_assert_not_null(strstr(s, "steals by thief (row) from victim (column)"));
	cr_assert_not_null(strstr(s, "Task lengths"));
	/* A 7 us, B 2 us and 4.4 us, C 4 us; the lost-begin task is left out. */
	cr_assert_not_null(strstr(s, "[  4.10 us,   8.19 us)         2"), "%s", s);
	cr_assert_not_null(strstr(s, "4 complete spans"), "%s", s);
	cr_assert_not_null(strstr(s, "note: 5 older events were dropped"));
	free(s);
	wt_model_free(&m);
	wt_trace_free(&t);
}

/* A worker silent for 3 ms between two tasks while the other one works:
 * one silence, with the three tasks begun meanwhile.  A shorter silence,
 * the idle stretch before a lane's first event and the one after its last
 * event are not counted. */
Test(trace_output, summary_silences)
{
	static const uint64_t w1[] = { 1500000, 2000000, 2500000, 3400000, 4300000, 5200000, 5500000 };
	struct tb b = { 0 };
	struct wt_trace t;
	struct wt_model m;
	char err[256];
	size_t len;
	char *s, *sec;

	tb_header(&b, 2, 1000000000u, 0, 0);
	tb_lane(&b, 0, 6, 0);
	tb_ev(&b, 0, WEFT_EV_TASK_BEGIN, WEFT_SRC_LOCAL, FN_A);
	tb_ev(&b, 1000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(&b, 3001000, WEFT_EV_TASK_BEGIN, WEFT_SRC_LOCAL, FN_A);
	tb_ev(&b, 3002000, WEFT_EV_TASK_END, 0, 0);
	tb_ev(&b, 3502000, WEFT_EV_TASK_BEGIN, WEFT_SRC_LOCAL, FN_A); /* 0.5 ms idle before */
	tb_ev(&b, 3503000, WEFT_EV_TASK_END, 0, 0);
	/* Worker 1: idle for 1.5 ms before its first event (the lane's start),
	 * then at most 1 ms between tasks; worker 0's lane ends 2 ms before
	 * its last. */
	tb_lane(&b, 1, 2 * sizeof(w1) / sizeof(w1[0]), 0);
	for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++) {
		tb_ev(&b, w1[i], WEFT_EV_TASK_BEGIN, WEFT_SRC_LOCAL, FN_B);
		tb_ev(&b, w1[i] + 1000, WEFT_EV_TASK_END, 0, 0);
	}
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(wt_model_build(&t, &m, err, sizeof err), 0, "%s", err);
	s = render(&t, &m, W_SUMMARY, &len);
	sec = strstr(s, "Silences");
	cr_assert_not_null(sec, "%s", s);
	cr_assert_not_null(strstr(sec, "\nSteals"), "%s", s);
	*strstr(sec, "\nSteals") = '\0'; /* this section only */
	cr_assert_not_null(strstr(sec, "       0         1    3.00 ms    3.00 ms\n"), "%s", sec);
	cr_assert_null(strstr(sec, "       1     "), "%s", sec); /* worker 1: no row */
	cr_assert_not_null(strstr(sec, " 1. worker 0       3.00 ms  from 1.00 us; other workers began 3 tasks meanwhile\n"),
	                   "%s", sec);
	cr_assert_null(strstr(sec, " 2. worker"), "%s", sec);
	free(s);
	wt_model_free(&m);
	wt_trace_free(&t);
	free(b.buf);
}

/* ------------------------------------------------------------------ */
/* Symbols                                                              */

Test(trace_sym, split)
{
	char *path = NULL;
	uint64_t off = 0;

	cr_assert_eq(wt_sym_split("/usr/lib/libx.so.1+0x1a2B", &path, &off), 1);
	cr_assert_str_eq(path, "/usr/lib/libx.so.1");
	cr_assert_eq(off, 0x1a2b);
	free(path);
	cr_assert_eq(wt_sym_split("/a+0x1/b+0x10", &path, &off), 1);
	cr_assert_str_eq(path, "/a+0x1/b");
	cr_assert_eq(off, 0x10);
	free(path);
	cr_assert_eq(wt_sym_split("main", &path, &off), 0);
	cr_assert_eq(wt_sym_split("+0x10", &path, &off), 0);
	cr_assert_eq(wt_sym_split("/x+0x", &path, &off), 0);
	cr_assert_eq(wt_sym_split("/x+0x12g", &path, &off), 0);
	cr_assert_eq(wt_sym_split("/x+0x12345678901234567", &path, &off), 0);
	cr_assert_eq(wt_sym_split("0x7f00", &path, &off), 0);
}

/* Not static and not inlined: addr2line must find it by address. */
__attribute__((noinline)) void weft_trace_test_marker_fn(void *p);
__attribute__((noinline)) void weft_trace_test_marker_fn(void *p)
{
	__asm__ volatile("" ::"r"(p) : "memory");
}

Test(trace_sym, addr2line_resolves_object_offsets)
{
	struct tb b = { 0 };
	struct wt_trace t;
	char err[256], name[4200], self[4096], *tool = wt_find_program("addr2line");
	uint64_t addr = (uint64_t)(uintptr_t)weft_trace_test_marker_fn;
	Dl_info info;
	ssize_t n;

	if (!tool)
		cr_skip_test("no addr2line in PATH");
	free(tool);
	cr_assert_neq(dladdr((void *)(uintptr_t)addr, &info), 0);
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	cr_assert_gt(n, 0);
	self[n] = '\0';
	snprintf(name, sizeof name, "%s+0x%llx", self,
	         (unsigned long long)(addr - (uint64_t)(uintptr_t)info.dli_fbase));
	tb_header(&b, 1, 1000000000u, 0, 3);
	tb_lane(&b, 0, 0, 0);
	tb_sym(&b, addr, name);
	tb_sym(&b, 2, "/nonexistent/obj+0x10");
	tb_sym(&b, 3, "already_named");
	cr_assert_eq(wt_trace_parse(b.buf, b.len, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(wt_sym_resolve(&t, NULL), 1);
	cr_assert_str_eq(wt_trace_sym(&t, addr)->name, "weft_trace_test_marker_fn");
	cr_assert_str_eq(wt_trace_sym(&t, 2)->name, "/nonexistent/obj+0x10");
	cr_assert_str_eq(wt_trace_sym(&t, 3)->name, "already_named");
	/* Cached: a second pass has nothing left to do. */
	cr_assert_eq(wt_sym_resolve(&t, NULL), 0);
	/* A missing tool resolves nothing and does not fail. */
	cr_assert_eq(wt_sym_resolve(&t, "/nonexistent/addr2line"), 0);
	wt_trace_free(&t);
	free(b.buf);
}

/* ------------------------------------------------------------------ */
/* The command                                                          */

Test(trace_cli, no_arguments)
{
	const char *args[] = { NULL };
	expect_failure(args, 2, "missing TRACE");
}

Test(trace_cli, missing_file)
{
	const char *args[] = { "/nonexistent/dir/x.trace", NULL };
	expect_failure(args, 1, "cannot open '/nonexistent/dir/x.trace'");
}

Test(trace_cli, truncated_trace)
{
	struct tb b;
	char *path = tmpfile_path("trunc.trace");
	const char *args[] = { path, "--summary", NULL };

	sample(&b);
	write_file(path, b.buf, b.len - 30);
	expect_failure(args, 1, "truncated trace");
	write_file(path, b.buf, 20);
	expect_failure(args, 1, "truncated trace");
	free(b.buf);
	free(path);
	rm_tree();
}

Test(trace_cli, bad_magic_and_empty)
{
	char *path = tmpfile_path("bad.trace");
	const char *args[] = { path, NULL };
	const char *dir[] = { tmpdir(), NULL };

	write_file(path, "#!/bin/sh\necho this is not a trace\n", 35);
	expect_failure(args, 1, "bad magic");
	write_file(path, "", 0);
	expect_failure(args, 1, "empty");
	expect_failure(dir, 1, "cannot read");
	free(path);
	rm_tree();
}

Test(trace_cli, usage_errors)
{
	struct tb b;
	char *path = tmpfile_path("ok.trace");
	const char *unknown[] = { path, "--frobnicate", NULL };
	const char *short_unknown[] = { "-x", path, NULL };
	const char *no_value[] = { path, "--json", NULL };
	const char *empty_value[] = { path, "--svg=", NULL };
	const char *twice[] = { path, "--json", "a", "--json", "b", NULL };
	const char *two_traces[] = { path, path, NULL };

	sample(&b);
	write_file(path, b.buf, b.len);
	expect_failure(unknown, 2, "unknown option '--frobnicate'");
	expect_failure(short_unknown, 2, "unknown option '-x'");
	expect_failure(no_value, 2, "needs an output file");
	expect_failure(empty_value, 2, "needs a non-empty output file");
	expect_failure(twice, 2, "given twice");
	expect_failure(two_traces, 2, "more than one TRACE");
	free(b.buf);
	free(path);
	rm_tree();
}

Test(trace_cli, unwritable_output)
{
	struct tb b;
	char *path = tmpfile_path("ok.trace");
	const char *args[] = { path, "--svg", "/nonexistent/dir/out.svg", NULL };

	sample(&b);
	write_file(path, b.buf, b.len);
	expect_failure(args, 1, "cannot create '/nonexistent/dir/out.svg'");
	free(b.buf);
	free(path);
	rm_tree();
}

Test(trace_cli, help_and_version)
{
	const char *help[] = { "--help", NULL };
	const char *version[] = { "--version", NULL };
	struct run_result r = run_tool(help);

	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	cr_assert_not_null(strstr(r.out, "usage: weft-trace TRACE"));
	run_free(&r);
	r = run_tool(version);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	cr_assert_not_null(strstr(r.out, "weft-trace"));
	run_free(&r);
}

Test(trace_cli, writes_outputs)
{
	struct tb b;
	char *path = tmpfile_path("ok.trace"), *json = tmpfile_path("out.json"), *svg = tmpfile_path("out.svg");
	const char *all[] = { path, "--json", json, "--svg", svg, "--summary", NULL };
	const char *dflt[] = { path, NULL };
	const char *to_stdout[] = { "--json=-", path, NULL };
	struct run_result r;
	size_t len;
	char *s;

	sample(&b);
	write_file(path, b.buf, b.len);
	r = run_tool(all);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d, stderr: %s", r.status, r.err);
	cr_assert_str_eq(r.err, "");
	cr_assert_not_null(strstr(r.out, "Per worker"));
	run_free(&r);
	s = read_file(json, &len);
	check_json(s, len, 3);
	free(s);
	s = read_file(svg, &len);
	check_svg(s, len, 3);
	free(s);
	/* No output option: the summary. */
	r = run_tool(dflt);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	cr_assert_not_null(strstr(r.out, "Steals"));
	run_free(&r);
	/* "-" is stdout, and then there is no summary. */
	r = run_tool(to_stdout);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	check_json(r.out, strlen(r.out), 3);
	run_free(&r);
	free(b.buf);
	free(path);
	free(json);
	free(svg);
	rm_tree();
}

/* ------------------------------------------------------------------ */
/* End to end: the runtime's writer                                     */

/* A fork-join tree whose spawned halves get stolen. */
struct spin {
	unsigned depth;
	volatile uint64_t sink;
};

__attribute__((noinline)) void weft_trace_test_tree(void *p);
__attribute__((noinline)) void weft_trace_test_tree(void *p)
{
	struct spin *s = p;
	if (s->depth == 0) {
		for (unsigned i = 0; i < 20000; i++)
			s->sink += i;
		return;
	}
	struct spin a = { s->depth - 1, 0 }, b = { s->depth - 1, 0 };
	weft_group_t g;
	weft_group_init(&g);
	if (weft_spawn(&g, weft_trace_test_tree, &a) != 0)
		weft_trace_test_tree(&a);
	weft_trace_test_tree(&b);
	weft_wait(&g);
}

Test(trace_e2e, runtime_trace_reads_back, .timeout = 120)
{
#ifdef WEFT_NO_TRACE
	cr_skip_test("built with --disable-trace");
#endif
	char *path = tmpfile_path("rt.trace"), *json = tmpfile_path("rt.json"), *svg = tmpfile_path("rt.svg");
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	struct wt_trace t;
	char err[512];
	size_t begins = 0, ours = 0;
	uint64_t fn = (uint64_t)(uintptr_t)weft_trace_test_tree;
	int rc;

	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.trace_path = path;
	rc = weft_runtime_create(&rt, &cfg);
	cr_assert_eq(rc, 0, "%s", weft_strerror(rc));
	for (int i = 0; i < 3; i++) {
		struct spin root = { 10, 0 };
		t_run(rt, weft_trace_test_tree, &root);
	}
	t_destroy(rt); /* writes the trace */

	rc = wt_trace_load(path, &t, err, sizeof err);
	if (rc != 0 && access(path, F_OK) != 0)
		cr_skip_test("runtime built without tracing (--disable-trace): no trace written");
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(t.nworkers, 2);
	cr_assert_gt(t.nevents, 0);
	for (uint32_t w = 0; w < t.nworkers; w++)
		for (size_t i = 0; i < t.lanes[w].nevents; i++)
			if (t.lanes[w].events[i].type == WEFT_EV_TASK_BEGIN) {
				begins++;
				ours += t.lanes[w].events[i].arg == fn;
			}
	cr_assert_gt(begins, 0);
	cr_assert_gt(ours, 0, "no TASK_BEGIN of the task function among %zu", begins);
	cr_assert_not_null(wt_trace_sym(&t, fn), "no symbol entry for the task function");
	{
		/* The writer names a function of the executable "PATH+0xOFF"
		 * with PATH from dladdr; addr2line can name it when PATH is a
		 * file (not when it is a bare argv[0] such as Criterion's
		 * "boxfort-worker"). */
		char *tool = wt_find_program("addr2line"), *obj = NULL;
		uint64_t off;
		int split = wt_sym_split(wt_trace_sym(&t, fn)->name, &obj, &off);
		int can = tool && split == 1 && strchr(obj, '/') && access(obj, R_OK) == 0;
		wt_sym_resolve(&t, NULL);
		if (can)
			cr_assert_str_eq(wt_trace_sym(&t, fn)->name, "weft_trace_test_tree");
		else
			/* Not cr_log_warn: Criterion then exits non-zero. */
			fprintf(stderr, "note: task function named '%s' in the trace: not resolvable here\n",
			        wt_trace_sym(&t, fn)->name);
		free(obj);
		free(tool);
	}
	exercise(&t);
	wt_trace_free(&t);

	/* And through the command. */
	{
		const char *args[] = { path, "--json", json, "--svg", svg, NULL };
		struct run_result r = run_tool(args);
		size_t len;
		char *s;
		cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "stderr: %s", r.err);
		run_free(&r);
		s = read_file(json, &len);
		check_json(s, len, 2);
		free(s);
		s = read_file(svg, &len);
		check_svg(s, len, 2);
		free(s);
	}
	free(path);
	free(json);
	free(svg);
	rm_tree();
}
