/*
 * trace_sym.c: addr2line resolution of "OBJECT+0xOFFSET" symbol names (see
 * trace_sym.h).
 *
 * addr2line is run without a shell (fork + execv, so an object path with
 * odd characters is only ever an argument), with stdin and stderr on
 * /dev/null and stdout on a pipe.  With -f and without -i it prints exactly
 * two lines per address (function, then file:line), "??" when it does not
 * know; output with any other line count is ignored as a whole, so a
 * misbehaving addr2line can only leave names unresolved.  Addresses go in
 * chunks to keep the command line bounded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trace_sym.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK 256                    /* addresses per addr2line run */
#define MAX_OUTPUT ((size_t)8 << 20) /* bytes of addr2line output we read */

int wt_sym_split(const char *name, char **path, uint64_t *offset)
{
	const char *plus = NULL, *p, *h;
	uint64_t v = 0;
	size_t nd = 0;

	for (p = name; (p = strstr(p, "+0x")) != NULL; p++)
		plus = p;
	if (!plus || plus == name)
		return 0;
	for (h = plus + 3; *h; h++) {
		int d;
		if (*h >= '0' && *h <= '9')
			d = *h - '0';
		else if (*h >= 'a' && *h <= 'f')
			d = *h - 'a' + 10;
		else if (*h >= 'A' && *h <= 'F')
			d = *h - 'A' + 10;
		else
			return 0;
		if (++nd > 16)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	if (nd == 0)
		return 0;
	*path = strndup(name, (size_t)(plus - name));
	if (!*path)
		return -1;
	*offset = v;
	return 1;
}

char *wt_find_program(const char *program)
{
	const char *env, *p;

	if (!program || !*program)
		return NULL;
	if (strchr(program, '/'))
		return access(program, X_OK) == 0 ? strdup(program) : NULL;
	env = getenv("PATH");
	if (!env)
		env = "/usr/local/bin:/usr/bin:/bin";
	for (p = env;; p++) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		char *full;

		if (dl == 0) {
			full = strdup(program); /* empty entry: current directory */
		} else {
			full = malloc(dl + 1 + strlen(program) + 1);
			if (full) {
				memcpy(full, p, dl);
				full[dl] = '/';
				strcpy(full + dl + 1, program);
			}
		}
		if (full && access(full, X_OK) == 0)
			return full;
		free(full);
		if (!end)
			return NULL;
		p = end;
	}
}

/* Run argv, return its stdout (NUL-terminated, malloc'd) or NULL. */
static char *run_capture(char *const argv[])
{
	int pfd[2], status;
	pid_t pid;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int ok = 1;

	if (pipe2(pfd, O_CLOEXEC) != 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 2);
		}
		dup2(pfd[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r;
		if (cap - n < 4096) {
			char *nb;
			if (cap >= MAX_OUTPUT) {
				ok = 0;
				break;
			}
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				ok = 0;
				break;
			}
			buf = nb;
		}
		r = read(pfd[0], buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ok = r == 0;
			break;
		}
		n += (size_t)r;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(buf);
		return NULL;
	}
	if (!buf)
		return calloc(1, 1);
	buf[n] = '\0';
	return buf;
}

struct pending {
	size_t sym; /* index into t->syms */
	char *path;
	uint64_t off;
};

static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	return c ? c : (x->sym < y->sym ? -1 : x->sym > y->sym);
}

/* Resolve p[0..n) (same path) with one addr2line run; returns names set. */
static size_t resolve_chunk(struct wt_trace *t, const char *tool, struct pending *p, size_t n)
{
	char *argv[CHUNK + 6];
	char offs[CHUNK][24];
	char *out, *line, *save = NULL;
	char **lines;
	size_t i, nl = 0, done = 0;

	argv[0] = (char *)tool;
	argv[1] = (char *)"-f";
	argv[2] = (char *)"-C";
	argv[3] = (char *)"-e";
	argv[4] = p[0].path;
	for (i = 0; i < n; i++) {
		snprintf(offs[i], sizeof offs[i], "0x%llx", (unsigned long long)p[i].off);
		argv[5 + i] = offs[i];
	}
	argv[5 + n] = NULL;
	out = run_capture(argv);
	if (!out)
		return 0;
	lines = calloc(2 * n + 1, sizeof(*lines));
	if (!lines) {
		free(out);
		return 0;
	}
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (nl == 2 * n) {
			nl++; /* too many lines: distrust the whole output */
			break;
		}
		lines[nl++] = line;
	}
	if (nl == 2 * n) {
		for (i = 0; i < n; i++) {
			const char *fn = lines[2 * i];
			struct wt_sym *s = &t->syms[p[i].sym];
			char *dup;

			if (!*fn || strcmp(fn, "??") == 0)
				continue;
			dup = strdup(fn);
			if (!dup)
				continue;
			free(s->name);
			s->name = dup;
			s->resolved = 1;
			done++;
		}
	}
	free(lines);
	free(out);
	return done;
}

size_t wt_sym_resolve(struct wt_trace *t, const char *addr2line)
{
	struct pending *p;
	char *tool;
	size_t i, np = 0, done = 0;

	if (!t || t->nsyms == 0)
		return 0;
	p = calloc(t->nsyms, sizeof(*p));
	if (!p)
		return 0;
	for (i = 0; i < t->nsyms; i++) {
		if (t->syms[i].resolved)
			continue;
		if (wt_sym_split(t->syms[i].name, &p[np].path, &p[np].off) == 1) {
			p[np].sym = i;
			np++;
		}
	}
	tool = np ? wt_find_program(addr2line ? addr2line : "addr2line") : NULL;
	if (tool) {
		qsort(p, np, sizeof(*p), pending_cmp);
		for (i = 0; i < np;) {
			size_t j = i;
			while (j < np && j - i < CHUNK && strcmp(p[j].path, p[i].path) == 0)
				j++;
			if (access(p[i].path, R_OK) == 0)
				done += resolve_chunk(t, tool, p + i, j - i);
			i = j;
		}
	}
	free(tool);
	for (i = 0; i < np; i++)
		free(p[i].path);
	free(p);
	return done;
}
