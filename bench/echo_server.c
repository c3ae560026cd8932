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
 *   --impl uring  one thread, plain C on liburing, what weft's io_uring
 *                 backend does without the runtime: a RECV per message
 *                 (IORING_RECVSEND_POLL_FIRST: the socket was drained),
 *                 answered by a direct send.
 *   --impl uring-multishot  the same loop with one multishot RECV per
 *                 connection into a ring of provided buffers (the kernel
 *                 receives as data arrives, no request per message).
 *
 * In both io_uring loops a send that would block is finished with
 * poll(POLLOUT) and send, blocking the loop: ping-pong never gets there,
 * and the loops stay as short as the code they measure.
 *
 * All of them set TCP_NODELAY on every connection and read up to 4 KiB at
 * a time.  The server listens on 127.0.0.1:--port (0: any free port) and prints
 * "port=N" on stdout once it accepts connections; it stops on SIGTERM or
 * SIGINT, or after --max-seconds in any case, and then prints
 * "conns=C msgs=M bytes=B cpu_s=S" on stdout (msgs: receives that
 * returned data).  The weft server stops by destroying its runtime, which
 * cancels every pending operation (the fibers see -ECANCELED and return).
 *
 *   echo_server [--impl weft|epoll|uring|uring-multishot] [--io uring|epoll]
 *               [--workers 1] [--port 0] [--max-seconds 600]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "bench_io.h"

#define BUF 4096

static const char *own_usage =
	"[--impl weft|epoll|uring|uring-multishot] [--io uring|epoll] [--port 0] [--max-seconds S] ";

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

/* ----------------------------------------------------- plain io_uring */
enum { U_ACCEPT = 1, U_RECV, U_STOP };
#define U_RING 4096   /* SQ entries */
#define U_BUFS 4096   /* provided buffers (a power of two) */

struct uring_loop {
	struct io_uring ring;
	struct io_uring_buf_ring *br; /* multishot only */
	char *bufs;
	char **conn_buf; /* per fd, the per-message mode's receive buffer */
	int nconn;
	int multishot;
};

static struct io_uring_sqe *u_sqe(struct uring_loop *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) { /* full: hand the kernel what is there */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static void u_tag(struct io_uring_sqe *sqe, int kind, int fd)
{
	io_uring_sqe_set_data64(sqe, ((uint64_t)kind << 32) | (uint32_t)fd);
}

static void u_accept(struct uring_loop *u, int lfd)
{
	struct io_uring_sqe *sqe = u_sqe(u);
	io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	u_tag(sqe, U_ACCEPT, lfd);
}

static void u_recv(struct uring_loop *u, int fd)
{
	struct io_uring_sqe *sqe = u_sqe(u);
	if (u->multishot) {
		io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = 0;
	} else {
		io_uring_prep_recv(sqe, fd, u->conn_buf[fd], BUF, 0);
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	}
	u_tag(sqe, U_RECV, fd);
}

static void u_give_buf(struct uring_loop *u, int bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * BUF, BUF, (unsigned short)bid,
	                      io_uring_buf_ring_mask(U_BUFS), 0);
	io_uring_buf_ring_advance(u->br, 1);
}

/* All of buf, or -1: a full socket buffer is waited out with poll. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t s = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (s < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, 1000);
			continue;
		}
		if (s < 0)
			return -1;
		buf += s;
		len -= (size_t)s;
	}
	return 0;
}

static int u_setup(struct uring_loop *u, int multishot)
{
	struct io_uring_params p;
	int rc;

	memset(u, 0, sizeof *u);
	u->multishot = multishot;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(U_RING, &u->ring, &p);
	if (rc == -EINVAL) { /* before Linux 6.1: no deferred task work */
		memset(&p, 0, sizeof p);
		rc = io_uring_queue_init_params(U_RING, &u->ring, &p);
	}
	if (rc != 0) {
		fprintf(stderr, "echo_server: io_uring_queue_init: %s\n", strerror(-rc));
		return -1;
	}
	if (!multishot)
		return 0;
	/* The provided-buffer ring, registered by hand (liburing 2.3 lacks
	 * io_uring_setup_buf_ring). */
	void *mem = NULL;
	struct io_uring_buf_reg reg;
	if (posix_memalign(&mem, 4096, U_BUFS * sizeof(struct io_uring_buf)) != 0 ||
	    !(u->bufs = malloc((size_t)U_BUFS * BUF))) {
		free(mem);
		fprintf(stderr, "echo_server: out of memory for provided buffers\n");
		return -1;
	}
	u->br = mem;
	io_uring_buf_ring_init(u->br);
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (unsigned long)(uintptr_t)u->br;
	reg.ring_entries = U_BUFS;
	reg.bgid = 0;
	if ((rc = io_uring_register_buf_ring(&u->ring, &reg, 0)) != 0) {
		fprintf(stderr, "echo_server: io_uring_register_buf_ring: %s\n", strerror(-rc));
		return -1;
	}
	for (int i = 0; i < U_BUFS; i++)
		u_give_buf(u, i);
	return 0;
}

/* A connection's receive buffer for the per-message mode; -1 when out of
 * memory. */
static int u_conn(struct uring_loop *u, int fd)
{
	if (u->multishot)
		return 0;
	if (fd >= u->nconn) {
		int nn = fd * 2 + 64;
		char **n = realloc(u->conn_buf, (size_t)nn * sizeof *n);
		if (!n)
			return -1;
		memset(n + u->nconn, 0, (size_t)(nn - u->nconn) * sizeof *n);
		u->conn_buf = n;
		u->nconn = nn;
	}
	if (!u->conn_buf[fd] && !(u->conn_buf[fd] = malloc(BUF)))
		return -1;
	return 0;
}

static int run_uring(int lfd, const sigset_t *stop, double max_s, int multishot)
{
	struct uring_loop u;
	struct __kernel_timespec limit = { (long long)max_s, 0 };
	struct io_uring_sqe *sqe;
	long msgs = 0, bytes = 0, conns = 0;
	int sfd = signalfd(-1, stop, SFD_CLOEXEC | SFD_NONBLOCK);
	int done = 0;

	if (sfd < 0 || u_setup(&u, multishot) != 0) {
		if (sfd < 0)
			perror("echo_server: signalfd");
		return 1;
	}
	u_accept(&u, lfd);
	sqe = u_sqe(&u);
	io_uring_prep_poll_add(sqe, sfd, POLLIN);
	u_tag(sqe, U_STOP, sfd);
	sqe = u_sqe(&u);
	io_uring_prep_timeout(sqe, &limit, 0, 0);
	u_tag(sqe, U_STOP, -1);
	printf("port-ready\n");
	fflush(stdout);
	while (!done) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int rc = io_uring_submit_and_wait(&u.ring, 1);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "echo_server: io_uring_submit_and_wait: %s\n", strerror(-rc));
			break;
		}
		io_uring_for_each_cqe(&u.ring, head, cqe) {
			int kind = (int)(cqe->user_data >> 32), fd = (int)(uint32_t)cqe->user_data;
			int res = cqe->res, more = (cqe->flags & IORING_CQE_F_MORE) != 0;
			seen++;
			if (kind == 0) { /* a cancel request's own completion */
				continue;
			} else if (kind == U_STOP) {
				done = 1;
			} else if (kind == U_ACCEPT) {
				if (res >= 0 && u_conn(&u, res) == 0) {
					nodelay(res);
					conns++;
					u_recv(&u, res);
				} else if (res >= 0) {
					close(res);
				}
				u_accept(&u, lfd);
			} else if (res > 0) {
				const char *data = u.multishot ? u.bufs + (size_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) * BUF
				                               : u.conn_buf[fd];
				msgs++;
				bytes += res;
				rc = send_all(fd, data, (size_t)res);
				if (u.multishot)
					u_give_buf(&u, (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
				if (rc == 0 && !more)
					u_recv(&u, fd);
				else if (rc != 0 && !more)
					close(fd);
				else if (rc != 0) { /* the RECV holds the socket: end it first */
					sqe = u_sqe(&u);
					io_uring_prep_cancel_fd(sqe, fd, 0);
					io_uring_sqe_set_data64(sqe, 0);
				}
			} else if (res == -ENOBUFS) { /* the buffers ran out: ask again */
				u_recv(&u, fd);
			} else if (!more) { /* EOF, an error, or cancelled: its last CQE */
				close(fd);
			}
		}
		io_uring_cq_advance(&u.ring, seen);
	}
	atomic_store(&n_msgs, msgs);
	atomic_store(&n_bytes, bytes);
	atomic_store(&n_conns, conns);
	io_uring_queue_exit(&u.ring); /* cancels what is still pending */
	for (int i = 0; i < u.nconn; i++)
		free(u.conn_buf[i]);
	free(u.conn_buf);
	free(u.br);
	free(u.bufs);
	close(sfd);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	enum { I_WEFT, I_EPOLL, I_URING, I_URING_MS } impl = I_WEFT;
	int port = 0, bound = 0, rc;
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
				impl = I_WEFT;
			else if (!strcmp(v, "epoll"))
				impl = I_EPOLL;
			else if (!strcmp(v, "uring"))
				impl = I_URING;
			else if (!strcmp(v, "uring-multishot"))
				impl = I_URING_MS;
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
	if (impl == I_WEFT)
		rc = run_weft(lfd, o.workers[0], io.io[0], &stop, (double)max_s);
	else if (impl == I_EPOLL)
		rc = run_epoll(lfd, &stop, (double)max_s);
	else
		rc = run_uring(lfd, &stop, (double)max_s, impl == I_URING_MS);
	close(lfd);
	printf("conns=%ld msgs=%ld bytes=%ld cpu_s=%.3f\n", atomic_load(&n_conns),
	       atomic_load(&n_msgs), atomic_load(&n_bytes), bench_cpu_seconds());
	return rc;
}
