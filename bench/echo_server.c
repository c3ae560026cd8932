/*
 * echo_server: a TCP echo server on loopback, for bench/echo-compare (the
 * load comes from bench/echo_client, in another process).
 *
 *   --impl weft   weft fibers: one acceptor fiber (weft_accept), one fiber
 *                 per connection doing weft_recv then weft_send of what it
 *                 got, until the peer closes; --workers N, --io uring|epoll.
 *   --impl epoll  the baseline: one thread, plain C, a level-triggered
 *                 epoll loop over nonblocking sockets (accept4, recv,
 *                 send; what a send leaves over waits for EPOLLOUT).
 *
 * Both set TCP_NODELAY on every connection and read up to 4 KiB at a time.
 * The server listens on 127.0.0.1:--port (0: any free port) and prints
 * "port=N" on stdout once it accepts connections; it stops on SIGTERM or
 * SIGINT, or after --max-seconds in any case, and then prints
 * "conns=C msgs=M bytes=B cpu_s=S" on stdout (msgs: receives that
 * returned data).  The weft server stops by destroying its runtime, which
 * cancels every pending operation (the fibers see -ECANCELED and return).
 *
 *   echo_server [--impl weft|epoll] [--io uring|epoll] [--workers 1]
 *               [--port 0] [--max-seconds 600]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "bench_io.h"

#define BUF 4096

static const char *own_usage = "[--impl weft|epoll] [--io uring|epoll] [--port 0] [--max-seconds S] ";

static atomic_long n_conns, n_msgs, n_bytes;

static int listen_on(int port, int *bound)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ------------------------------------------------------------ weft fibers */
struct weft_srv {
	weft_runtime_t *rt;
	int lfd;
};

static void conn_fiber(void *p)
{
	int fd = (int)(intptr_t)p;
	char buf[BUF];
	long msgs = 0, bytes = 0;
	for (;;) {
		ssize_t r = weft_recv(fd, buf, sizeof buf, 0);
		if (r <= 0)
			break;
		msgs++;
		bytes += r;
		for (ssize_t off = 0; off < r;) {
			ssize_t s = weft_send(fd, buf + off, (size_t)(r - off), 0);
			if (s <= 0)
				goto out;
			off += s;
		}
	}
out:
	atomic_fetch_add_explicit(&n_msgs, msgs, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_bytes, bytes, memory_order_relaxed);
	weft_close(fd);
}

static void accept_fiber(void *p)
{
	struct weft_srv *s = p;
	for (;;) {
		int fd = weft_accept(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (fd == -ECANCELED || fd == -ESHUTDOWN || fd == -EBADF || fd == -EINVAL)
				break;
			/* EMFILE and friends: back off, keep serving */
			fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
			weft_sleep(1000000);
			continue;
		}
		nodelay(fd);
		atomic_fetch_add_explicit(&n_conns, 1, memory_order_relaxed);
		int rc = weft_go(s->rt, conn_fiber, (void *)(intptr_t)fd);
		if (rc != 0) {
			fprintf(stderr, "echo_server: weft_go: %s\n", weft_strerror(rc));
			close(fd);
		}
	}
}

/* Wait for a stop signal, at most max_s seconds (EINTR: wait on). */
static int wait_stop(const sigset_t *set, double max_s)
{
	double end = bench_now() + max_s;
	for (;;) {
		double left = end - bench_now();
		if (left <= 0)
			return 0;
		struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
		int sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno != EINTR) {
			if (errno != EAGAIN)
				perror("echo_server: sigtimedwait");
			return 0;
		}
	}
}

static int run_weft(int lfd, unsigned workers, int io, const sigset_t *stop, double max_s)
{
	struct weft_srv s;
	int rc;
	s.lfd = lfd;
	s.rt = bench_io_create(workers, io, 0);
	if (!s.rt)
		return 1;
	if ((rc = weft_go(s.rt, accept_fiber, &s)) != 0) {
		fprintf(stderr, "echo_server: weft_go: %s\n", weft_strerror(rc));
		return 1;
	}
	printf("port-ready\n");
	fflush(stdout);
	wait_stop(stop, max_s);
	bench_weft_destroy(s.rt);
	return bench_failed();
}

/* --------------------------------------------------------- plain epoll */
struct conn {
	int out_off, out_len; /* unsent rest of buf */
	char buf[BUF];
};

static int run_epoll(int lfd, const sigset_t *stop, double max_s)
{
	struct epoll_event ev, evs[256];
	struct conn **cs = NULL;
	int ncs = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int sfd = signalfd(-1, stop, SFD_CLOEXEC | SFD_NONBLOCK);
	double end = bench_now() + max_s;
	long msgs = 0, bytes = 0, conns = 0;

	if (ep < 0 || sfd < 0) {
		perror("echo_server: epoll_create1/signalfd");
		return 1;
	}
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	printf("port-ready\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0 && errno != EINTR) {
			perror("echo_server: epoll_wait");
			break;
		}
		if (bench_now() > end)
			break;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == sfd)
				goto done;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= ncs) {
						int nn = c * 2 + 64;
						struct conn **ncp = realloc(cs, (size_t)nn * sizeof *cs);
						if (!ncp) {
							close(c);
							continue;
						}
						memset(ncp + ncs, 0, (size_t)(nn - ncs) * sizeof *cs);
						cs = ncp;
						ncs = nn;
					}
					if (!cs[c] && !(cs[c] = malloc(sizeof **cs))) {
						close(c);
						continue;
					}
					cs[c]->out_len = cs[c]->out_off = 0;
					nodelay(c);
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
					conns++;
				}
				continue;
			}
			struct conn *c = cs[fd];
			if (c->out_len) { /* EPOLLOUT: finish the last echo first */
				ssize_t s = send(fd, c->buf + c->out_off, (size_t)(c->out_len - c->out_off),
				                 MSG_NOSIGNAL);
				if (s < 0 && errno == EAGAIN)
					continue;
				if (s < 0)
					goto drop;
				c->out_off += (int)s;
				if (c->out_off < c->out_len)
					continue;
				c->out_len = c->out_off = 0;
				ev.events = EPOLLIN;
				ev.data.fd = fd;
				epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
				continue;
			}
			ssize_t r = recv(fd, c->buf, BUF, 0);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0)
				goto drop;
			msgs++;
			bytes += r;
			ssize_t s = send(fd, c->buf, (size_t)r, MSG_NOSIGNAL);
			if (s < 0 && errno == EAGAIN)
				s = 0;
			if (s < 0)
				goto drop;
			if (s < r) {
				c->out_off = (int)s;
				c->out_len = (int)r;
				ev.events = EPOLLOUT;
				ev.data.fd = fd;
				epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
			}
			continue;
		drop:
			close(fd); /* also leaves the epoll set */
		}
	}
done:
	atomic_store(&n_msgs, msgs);
	atomic_store(&n_bytes, bytes);
	atomic_store(&n_conns, conns);
	for (int i = 0; i < ncs; i++)
		free(cs[i]);
	free(cs);
	close(ep);
	close(sfd);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	int weft = 1, port = 0, bound = 0, rc;
	long max_s = 600;
	sigset_t stop;

	bench_opts_init(&o, "1", 1);
	bench_io_parse(&io, "uring");
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage) ||
		    bench_io_arg(&io, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--impl")) {
			const char *v = bench_optval(argc, argv, &i, own_usage);
			if (!strcmp(v, "weft"))
				weft = 1;
			else if (!strcmp(v, "epoll"))
				weft = 0;
			else
				bench_usage_exit(argv[0], own_usage);
		} else if (!strcmp(argv[i], "--port")) {
			port = (int)bench_optlong(argc, argv, &i, own_usage, 0, 65535);
		} else if (!strcmp(argv[i], "--max-seconds")) {
			max_s = bench_optlong(argc, argv, &i, own_usage, 1, 86400);
		} else {
			bench_usage_exit(argv[0], own_usage);
		}
	}
	bench_raise_nofile(65536);
	/* Every thread (the workers too) inherits the blocked stop signals:
	 * only the main thread's sigtimedwait (or signalfd) takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = listen_on(port, &bound);
	if (lfd < 0) {
		fprintf(stderr, "echo_server: listen on port %d: %s\n", port, strerror(-lfd));
		return 1;
	}
	printf("port=%d\n", bound);
	fflush(stdout);
	if (weft)
		rc = run_weft(lfd, o.workers[0], io.io[0], &stop, (double)max_s);
	else
		rc = run_epoll(lfd, &stop, (double)max_s);
	close(lfd);
	printf("conns=%ld msgs=%ld bytes=%ld cpu_s=%.3f\n", atomic_load(&n_conns),
	       atomic_load(&n_msgs), atomic_load(&n_bytes), bench_cpu_seconds());
	return rc;
}
