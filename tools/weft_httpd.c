/*
 * weft-httpd: an HTTP/1.1 server on weft fibers (routes: tools/httpd.h).
 *
 *   weft-httpd [--listen HOST:PORT] [--workers N] [--io uring|epoll|auto]
 *              [--root DIR] [--header-limit BYTES] [--idle-timeout-ms MS]
 *              [--max-file-bytes BYTES] [--pin]
 *
 * Prints one line "weft-httpd: listening on HOST:PORT (...)" to stdout once
 * it accepts connections, and stops cleanly (every connection closed, the
 * runtime destroyed) on SIGINT or SIGTERM.  WEFT_* environment variables
 * (weft_config_init) apply first; the options override them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "weft.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: weft-httpd [options]\n"
	        "  --listen HOST:PORT      address to serve (default 127.0.0.1:8080; [::1]:PORT for IPv6)\n"
	        "  --workers N             worker threads (default: one per CPU)\n"
	        "  --io uring|epoll|auto   event backend (default auto: io_uring, else epoll)\n"
	        "  --root DIR              directory that /file serves (default: none, /file is 404)\n"
	        "  --header-limit BYTES    largest request head (default 8192): 431 above\n"
	        "  --idle-timeout-ms MS    close idle or stalled connections after MS (default 10000)\n"
	        "  --max-file-bytes BYTES  largest /file answer (default 1048576)\n"
	        "  --pin                   pin workers to CPUs\n"
	        "routes: /  /work?us=N  /fanout?tasks=K&us=N  /sleep?ms=N  /file?path=P&bytes=N\n");
}

static int parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* HOST:PORT, [V6]:PORT or :PORT into host (static storage) and port. */
static int parse_listen(const char *arg, const char **host, int *port)
{
	static char buf[256];
	unsigned long long p;
	const char *colon;
	if (strlen(arg) >= sizeof buf)
		return -1;
	strcpy(buf, arg);
	if (buf[0] == '[') {
		char *rb = strchr(buf, ']');
		if (!rb || rb[1] != ':')
			return -1;
		*rb = '\0';
		*host = buf + 1;
		colon = rb + 1;
	} else {
		char *c = strrchr(buf, ':');
		if (!c)
			return -1;
		*c = '\0';
		*host = buf[0] ? buf : "0.0.0.0";
		colon = c;
	}
	if (parse_ull(colon + 1, 65535, &p) < 0)
		return -1;
	*port = (int)p;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_WORKERS, O_IO, O_ROOT, O_HDR, O_IDLE, O_MAXFILE, O_PIN, O_HELP };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "io", required_argument, NULL, O_IO },
		{ "root", required_argument, NULL, O_ROOT },
		{ "header-limit", required_argument, NULL, O_HDR },
		{ "idle-timeout-ms", required_argument, NULL, O_IDLE },
		{ "max-file-bytes", required_argument, NULL, O_MAXFILE },
		{ "pin", no_argument, NULL, O_PIN },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	weft_config_t wcfg;
	struct httpd_config hcfg;
	unsigned long long v;
	int o;

	weft_config_init(&wcfg);
	httpd_config_init(&hcfg);
	hcfg.host = "127.0.0.1";
	hcfg.port = 8080;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_LISTEN:
			if (parse_listen(optarg, &hcfg.host, &hcfg.port) < 0) {
				fprintf(stderr, "weft-httpd: --listen wants HOST:PORT, got '%s'\n", optarg);
				return 2;
			}
			break;
		case O_WORKERS:
			if (parse_ull(optarg, 4096, &v) < 0) {
				fprintf(stderr, "weft-httpd: bad --workers '%s'\n", optarg);
				return 2;
			}
			wcfg.workers = (unsigned)v;
			break;
		case O_IO:
			if (!strcmp(optarg, "uring") || !strcmp(optarg, "io_uring"))
				wcfg.io = WEFT_IO_URING;
			else if (!strcmp(optarg, "epoll"))
				wcfg.io = WEFT_IO_EPOLL;
			else if (!strcmp(optarg, "auto"))
				wcfg.io = WEFT_IO_AUTO;
			else {
				fprintf(stderr, "weft-httpd: --io wants uring, epoll or auto, got '%s'\n", optarg);
				return 2;
			}
			break;
		case O_ROOT:
			hcfg.root = optarg;
			break;
		case O_HDR:
			if (parse_ull(optarg, 1u << 20, &v) < 0 || v < 256) {
				fprintf(stderr, "weft-httpd: --header-limit wants 256..1048576, got '%s'\n", optarg);
				return 2;
			}
			hcfg.header_limit = (size_t)v;
			break;
		case O_IDLE:
			if (parse_ull(optarg, 86400000, &v) < 0 || v == 0) {
				fprintf(stderr, "weft-httpd: --idle-timeout-ms wants 1..86400000, got '%s'\n", optarg);
				return 2;
			}
			hcfg.idle_timeout_ms = (unsigned)v;
			break;
		case O_MAXFILE:
			if (parse_ull(optarg, 1u << 30, &v) < 0 || v == 0) {
				fprintf(stderr, "weft-httpd: --max-file-bytes wants 1..1073741824, got '%s'\n", optarg);
				return 2;
			}
			hcfg.max_file_bytes = (size_t)v;
			break;
		case O_PIN:
			wcfg.pin = 1;
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	/* Signals: SIGINT/SIGTERM are taken with sigwait by this thread; the
	 * workers inherit the blocked mask.  SIGPIPE: sends use MSG_NOSIGNAL,
	 * but ignore it anyway. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	weft_runtime_t *rt;
	int rc = weft_runtime_create(&rt, &wcfg);
	if (rc < 0) {
		fprintf(stderr, "weft-httpd: weft_runtime_create: %s\n", weft_strerror(rc));
		return 1;
	}
	struct httpd *h;
	rc = httpd_start(rt, &hcfg, &h);
	if (rc < 0) {
		fprintf(stderr, "weft-httpd: cannot serve on %s:%d: %s\n", hcfg.host, hcfg.port, weft_strerror(rc));
		weft_runtime_destroy(rt);
		return 1;
	}
	int be = weft_runtime_io_backend(rt);
	const char *note = weft_runtime_io_note(rt);
	printf("weft-httpd: listening on %s:%d (workers=%u io=%s%s%s)\n", hcfg.host, rc, weft_runtime_workers(rt),
	       be == WEFT_IO_URING ? "io_uring" : "epoll", note ? ": " : "", note ? note : "");
	fflush(stdout);

	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	fprintf(stderr, "weft-httpd: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	httpd_stop(h);
	rc = weft_runtime_destroy(rt);
	if (rc < 0) {
		fprintf(stderr, "weft-httpd: weft_runtime_destroy: %s\n", weft_strerror(rc));
		return 1;
	}
	return 0;
}
