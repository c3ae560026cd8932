/*
 * echo_client: load for bench/echo_server, in its own process.  Opens
 * --conns TCP connections to 127.0.0.1:--port (TCP_NODELAY), then each
 * connection plays ping-pong: send one --size byte message (a sequence
 * number and the connection's id, repeated), wait until the same bytes
 * came back, record the round trip, send the next.  --threads threads
 * (default 1), each with its own plain epoll loop over its share of the
 * connections.  After --warmup-s seconds, round trips that complete in the
 * next --duration seconds are counted and their latencies recorded in a
 * log-linear histogram (about 1.5% resolution).
 *
 * One CSV line (bench "echo"; --label and --workers describe the server):
 *   median_s  p50 round trip;  min_s, max_s  the fastest and slowest
 *   result    msgs_per_s=;p99_s=;client_cpu= (CPUs this process used:
 *             near --threads means the client, not the server, limited
 *             the rate)
 *   check     ok when every connection was made and every echoed byte
 *             matched what was sent
 *
 *   echo_client --port P [--conns 1000] [--size 64] [--duration 5]
 *               [--warmup-s 1] [--threads 1] [--label NAME] [--workers N]
 *               [--no-header]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "bench_io.h"

static const char *own_usage =
	"--port P [--conns N] [--size B] [--duration S] [--warmup-s S] [--threads T] [--label NAME] ";

#define MAX_SIZE 4096
#define HSUB 64                       /* sub-buckets per power of two */
#define HBUCKETS (2 * HSUB + 40 * HSUB) /* up to 2^46 ns */

struct hist {
	uint64_t b[HBUCKETS];
	uint64_t n, min, max;
};

static int hidx(uint64_t v)
{
	if (v < 2 * HSUB)
		return (int)v;
	int e = 63 - __builtin_clzll(v); /* >= 7 */
	int i = 2 * HSUB + (e - 7) * HSUB + (int)((v >> (e - 6)) & (HSUB - 1));
	return i < HBUCKETS ? i : HBUCKETS - 1;
}

static double hval(int i) /* bucket midpoint, ns */
{
	if (i < 2 * HSUB)
		return i;
	int e = (i - 2 * HSUB) / HSUB + 7, s = (i - 2 * HSUB) % HSUB;
	double lo = (double)(1ULL << e) + (double)s * (double)(1ULL << (e - 6));
	return lo + (double)(1ULL << (e - 6)) / 2;
}

static void hadd(struct hist *h, uint64_t v)
{
	h->b[hidx(v)]++;
	if (!h->n || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
}

static double hpct(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p / 100.0 * (double)h->n + 0.999999), acc = 0;
	if (!want)
		want = 1;
	for (int i = 0; i < HBUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want)
			return hval(i);
	}
	return (double)h->max;
}

struct conn {
	int fd, id;
	uint32_t seq;
	size_t got, sent;
	uint64_t t_sent;
	unsigned char out[MAX_SIZE], in[MAX_SIZE];
};

struct worker {
	struct conn *c;
	int nc;
	size_t size;
	uint64_t t_measure, t_end;
	struct hist h;
	long errors;
	pthread_t th;
};

static void fill(struct conn *c, size_t size)
{
	uint32_t w[2] = { c->seq, (uint32_t)c->id };
	for (size_t i = 0; i < size; i++)
		c->out[i] = ((unsigned char *)w)[i % sizeof w];
}

/* Send what is left of c->out; -1 on error. */
static int push(struct conn *c, size_t size)
{
	while (c->sent < size) {
		ssize_t s = send(c->fd, c->out + c->sent, size - c->sent, MSG_NOSIGNAL);
		if (s < 0 && errno == EAGAIN)
			return 0; /* the next EPOLLIN finds it short: see below */
		if (s <= 0)
			return -1;
		c->sent += (size_t)s;
	}
	return 0;
}

static void *client_thread(void *p)
{
	struct worker *w = p;
	struct epoll_event ev, evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		w->errors++;
		return NULL;
	}
	for (int i = 0; i < w->nc; i++) {
		struct conn *c = &w->c[i];
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		fill(c, w->size);
		c->t_sent = bench_ns();
		if (push(c, w->size) != 0)
			w->errors++;
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 256, 10);
		uint64_t now = bench_ns();
		if (now >= w->t_end)
			break;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->got, w->size - c->got, 0);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				w->errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			c->got += (size_t)r;
			if (c->got < w->size)
				continue;
			now = bench_ns();
			if (memcmp(c->in, c->out, w->size))
				w->errors++;
			if (now >= w->t_measure && now < w->t_end)
				hadd(&w->h, now - c->t_sent);
			c->seq++;
			c->got = c->sent = 0;
			fill(c, w->size);
			c->t_sent = now;
			if (push(c, w->size) != 0 || c->sent < w->size) {
				/* 64 bytes into an idle socket never stay behind */
				w->errors++;
			}
		}
	}
	close(ep);
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	long port = -1, nconns = 1000, size = 64, threads = 1;
	double duration = 5, warm = 1;
	const char *label = "server";

	bench_opts_init(&o, "1", 1);
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--port"))
			port = bench_optlong(argc, argv, &i, own_usage, 1, 65535);
		else if (!strcmp(argv[i], "--conns"))
			nconns = bench_optlong(argc, argv, &i, own_usage, 1, 60000);
		else if (!strcmp(argv[i], "--size"))
			size = bench_optlong(argc, argv, &i, own_usage, 8, MAX_SIZE);
		else if (!strcmp(argv[i], "--duration"))
			duration = (double)bench_optlong(argc, argv, &i, own_usage, 1, 3600);
		else if (!strcmp(argv[i], "--warmup-s"))
			warm = (double)bench_optlong(argc, argv, &i, own_usage, 0, 3600);
		else if (!strcmp(argv[i], "--threads"))
			threads = bench_optlong(argc, argv, &i, own_usage, 1, 64);
		else if (!strcmp(argv[i], "--label"))
			label = bench_optval(argc, argv, &i, own_usage);
		else
			bench_usage_exit(argv[0], own_usage);
	}
	if (port < 0)
		bench_usage_exit(argv[0], own_usage);
	if (threads > nconns)
		threads = nconns;
	signal(SIGPIPE, SIG_IGN);
	bench_raise_nofile((rlim_t)nconns + 64);
	bench_print_header(&o);

	struct conn *cs = calloc((size_t)nconns, sizeof *cs);
	struct worker *ws = calloc((size_t)threads, sizeof *ws);
	if (!cs || !ws)
		return 1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	long made = 0;
	for (long i = 0; i < nconns; i++) {
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
			fprintf(stderr, "echo_client: connection %ld: %s\n", i, strerror(errno));
			if (fd >= 0)
				close(fd);
			break;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		cs[i].fd = fd;
		cs[i].id = (int)i;
		made++;
	}
	double cpu0 = bench_cpu_seconds();
	uint64_t t0 = bench_ns();
	uint64_t t_measure = t0 + (uint64_t)(warm * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
	long per = made / threads, extra = made % threads, at = 0;
	for (long t = 0; t < threads; t++) {
		struct worker *w = &ws[t];
		w->c = cs + at;
		w->nc = (int)(per + (t < extra));
		at += w->nc;
		w->size = (size_t)size;
		w->t_measure = t_measure;
		w->t_end = t_end;
		if (w->nc && pthread_create(&w->th, NULL, client_thread, w) != 0) {
			fprintf(stderr, "echo_client: pthread_create failed\n");
			return 1;
		}
	}
	struct hist *h = calloc(1, sizeof *h);
	long errors = 0;
	if (!h)
		return 1;
	for (long t = 0; t < threads; t++) {
		struct worker *w = &ws[t];
		if (!w->nc)
			continue;
		pthread_join(w->th, NULL);
		for (int i = 0; i < HBUCKETS; i++)
			h->b[i] += w->h.b[i];
		if (w->h.n && (!h->n || w->h.min < h->min))
			h->min = w->h.min;
		if (w->h.max > h->max)
			h->max = w->h.max;
		h->n += w->h.n;
		errors += w->errors;
	}
	double cpu = (bench_cpu_seconds() - cpu0) / ((double)(bench_ns() - t0) * 1e-9);
	for (long i = 0; i < made; i++)
		close(cs[i].fd);

	char param[160], result[160];
	snprintf(param, sizeof param, "conns=%ld;size=%ld;duration_s=%g;client_threads=%ld", nconns,
	         size, duration, threads);
	snprintf(result, sizeof result, "msgs_per_s=%.0f;p99_s=%.9f;client_cpu=%.2f",
	         (double)h->n / duration, h->n ? hpct(h, 99) * 1e-9 : 0.0, cpu);
	printf("echo,%s,%u,%s,1,%.9f,%.9f,%.9f,%s,%s\n", label, o.workers[0], param,
	       h->n ? hpct(h, 50) * 1e-9 : 0.0, (double)h->min * 1e-9, (double)h->max * 1e-9, result,
	       made == nconns && errors == 0 && h->n > 0 ? "ok" : "FAIL");
	if (errors)
		fprintf(stderr, "echo_client: %ld errors (closed connections or wrong bytes)\n", errors);
	free(h);
	free(cs);
	free(ws);
	return made == nconns && errors == 0 ? 0 : 1;
}
