# bench/http.mk: the HTTP comparison, bench/http-compare, and its peers.
#
# The only peer compiled by make is the libuv server (bench/peers/uv_hello,
# noinst), and only when configure found libuv (HAVE_UV).  The Go, Tokio /
# hyper and nginx peers are built or configured by bench/http-compare
# itself, which skips (and says why) whatever is not installed.
# `make http-compare` builds everything here (weft-httpd only exists when
# configure found llhttp) and runs the comparison on this build
# (HTTP_COMPARE_FLAGS=--quick for a short run); results go to
# $(top_srcdir)/bench/results/.

if HAVE_UV
noinst_PROGRAMS += bench/peers/uv_hello
bench_peers_uv_hello_SOURCES = bench/peers/uv_hello.c
bench_peers_uv_hello_CPPFLAGS = $(UV_CFLAGS)
bench_peers_uv_hello_LDADD = $(UV_LIBS)
endif

EXTRA_DIST += bench/http-compare bench/peers/nginx.conf.in \
	bench/peers/go_hello/go.mod bench/peers/go_hello/main.go \
	bench/peers/tokio_hello/Cargo.toml bench/peers/tokio_hello/src/main.rs

HTTP_COMPARE_FLAGS =
http-compare: all
	$(top_srcdir)/bench/http-compare --build $(abs_top_builddir) --no-build \
		--out $(abs_top_srcdir)/bench/results $(HTTP_COMPARE_FLAGS)
.PHONY: http-compare
