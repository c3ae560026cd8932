# bench/io.mk: benchmarks of the event-completion layer (fibers, I/O
# operations, timers).  noinst programs: `make` builds them, `make check`
# never runs them; bench/io-run runs them all (bench/README.md).
#
# weft programs link the public shared library with -no-install (see
# bench/local.mk), except bench/fiber: it also times the runtime's internal
# context switch (weft__ctx_switch, a hidden symbol), so it links the
# convenience library libweft_core.la statically.  bench/echo_client is
# plain C and links no weft at all: it is the load, in its own process.

BENCH_IO_H = bench/bench_io.h $(BENCH_WEFT_H)

noinst_PROGRAMS += bench/fiber bench/pingpong bench/uring_nop bench/sleepers \
	bench/echo_server bench/echo_client

bench_fiber_SOURCES = bench/fiber.c $(BENCH_IO_H)
bench_fiber_CPPFLAGS = $(AM_CPPFLAGS) -DBENCH_HAVE_CTX_SWITCH
bench_fiber_LDADD = libweft_core.la $(CK_LIBS) $(URING_LIBS) -lpthread
bench_fiber_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_pingpong_SOURCES = bench/pingpong.c $(BENCH_IO_H)
bench_pingpong_LDADD = libweft.la -lpthread
bench_pingpong_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_uring_nop_SOURCES = bench/uring_nop.c $(BENCH_IO_H)
bench_uring_nop_CPPFLAGS = $(AM_CPPFLAGS) $(URING_CFLAGS)
bench_uring_nop_LDADD = libweft.la $(URING_LIBS) -lpthread
bench_uring_nop_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_sleepers_SOURCES = bench/sleepers.c $(BENCH_IO_H)
bench_sleepers_LDADD = libweft.la -lpthread
bench_sleepers_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_echo_server_SOURCES = bench/echo_server.c $(BENCH_IO_H)
bench_echo_server_CPPFLAGS = $(AM_CPPFLAGS) $(URING_CFLAGS)
bench_echo_server_LDADD = libweft.la $(URING_LIBS) -lpthread
bench_echo_server_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_echo_client_SOURCES = bench/echo_client.c $(BENCH_IO_H)
bench_echo_client_LDADD = -lpthread

EXTRA_DIST += bench/io-run bench/echo-compare
