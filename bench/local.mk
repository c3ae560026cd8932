# bench/local.mk: owned by the benchmarks.
#
# Every benchmark is a noinst program: `make` builds them, `make check`
# never runs them.  `make bench` runs the whole suite through bench/run
# (results in $(top_srcdir)/bench/results/).  Peers (OpenMP, oneTBB) and
# UTS (SHA-1 from nettle) are built when configure found what they need;
# bench/run skips whatever is missing and builds the LLVM libomp variants
# itself with clang when it can.
#
# weft programs link the public shared library; -no-install makes libtool
# link the real executable (rpath to .libs) instead of a wrapper script.

BENCH_COMMON_H = bench/bench_util.h
BENCH_WEFT_H = bench/bench_weft.h $(BENCH_COMMON_H)
BENCH_OMP_H = bench/bench_omp.h $(BENCH_COMMON_H)
BENCH_TBB_H = bench/bench_tbb.h $(BENCH_COMMON_H)
BENCH_WEFT_LINKFLAGS = $(AM_LDFLAGS) -no-install

# --- weft and serial -------------------------------------------------------
noinst_PROGRAMS += bench/fib bench/nqueens bench/spawn bench/pfor bench/idle

bench_fib_SOURCES = bench/fib.c bench/fib.h $(BENCH_WEFT_H)
bench_fib_LDADD = libweft.la
bench_fib_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_nqueens_SOURCES = bench/nqueens.c bench/nqueens.h $(BENCH_WEFT_H)
bench_nqueens_LDADD = libweft.la
bench_nqueens_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_spawn_SOURCES = bench/spawn.c $(BENCH_WEFT_H)
bench_spawn_LDADD = libweft.la
bench_spawn_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_pfor_SOURCES = bench/pfor.c bench/pfor_kernels.h $(BENCH_WEFT_H)
bench_pfor_LDADD = libweft.la
bench_pfor_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

bench_idle_SOURCES = bench/idle.c bench/fib.h $(BENCH_WEFT_H)
bench_idle_LDADD = libweft.la
bench_idle_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)

if HAVE_NETTLE
noinst_PROGRAMS += bench/uts
bench_uts_SOURCES = bench/uts.c bench/uts_tree.h $(BENCH_WEFT_H)
bench_uts_CFLAGS = $(AM_CFLAGS) $(NETTLE_CFLAGS)
bench_uts_LDADD = libweft.la $(NETTLE_LIBS) -lm
bench_uts_LDFLAGS = $(BENCH_WEFT_LINKFLAGS)
endif

# --- OpenMP peers (the compiler's own runtime: libgomp with gcc) ------------
if HAVE_OPENMP
noinst_PROGRAMS += bench/fib_omp bench/nqueens_omp bench/spawn_omp bench/pfor_omp

bench_fib_omp_SOURCES = bench/fib_omp.c bench/fib.h $(BENCH_OMP_H)
bench_fib_omp_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
bench_fib_omp_LDFLAGS = $(AM_LDFLAGS) $(OPENMP_CFLAGS)

bench_nqueens_omp_SOURCES = bench/nqueens_omp.c bench/nqueens.h $(BENCH_OMP_H)
bench_nqueens_omp_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
bench_nqueens_omp_LDFLAGS = $(AM_LDFLAGS) $(OPENMP_CFLAGS)

bench_spawn_omp_SOURCES = bench/spawn_omp.c $(BENCH_OMP_H)
bench_spawn_omp_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
bench_spawn_omp_LDFLAGS = $(AM_LDFLAGS) $(OPENMP_CFLAGS)

bench_pfor_omp_SOURCES = bench/pfor_omp.c bench/pfor_kernels.h $(BENCH_OMP_H)
bench_pfor_omp_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
bench_pfor_omp_LDFLAGS = $(AM_LDFLAGS) $(OPENMP_CFLAGS)

if HAVE_NETTLE
noinst_PROGRAMS += bench/uts_omp
bench_uts_omp_SOURCES = bench/uts_omp.c bench/uts_tree.h $(BENCH_OMP_H)
bench_uts_omp_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS) $(NETTLE_CFLAGS)
bench_uts_omp_LDADD = $(NETTLE_LIBS) -lm
bench_uts_omp_LDFLAGS = $(AM_LDFLAGS) $(OPENMP_CFLAGS)
endif
endif

# --- oneTBB peers ---------------------------------------------------------
if HAVE_TBB
noinst_PROGRAMS += bench/fib_tbb bench/nqueens_tbb bench/spawn_tbb bench/pfor_tbb

bench_fib_tbb_SOURCES = bench/fib_tbb.cpp bench/fib.h $(BENCH_TBB_H)
bench_fib_tbb_CXXFLAGS = $(AM_CXXFLAGS) $(TBB_CFLAGS)
bench_fib_tbb_LDADD = $(TBB_LIBS)

bench_nqueens_tbb_SOURCES = bench/nqueens_tbb.cpp bench/nqueens.h $(BENCH_TBB_H)
bench_nqueens_tbb_CXXFLAGS = $(AM_CXXFLAGS) $(TBB_CFLAGS)
bench_nqueens_tbb_LDADD = $(TBB_LIBS)

bench_spawn_tbb_SOURCES = bench/spawn_tbb.cpp $(BENCH_TBB_H)
bench_spawn_tbb_CXXFLAGS = $(AM_CXXFLAGS) $(TBB_CFLAGS)
bench_spawn_tbb_LDADD = $(TBB_LIBS)

bench_pfor_tbb_SOURCES = bench/pfor_tbb.cpp bench/pfor_kernels.h $(BENCH_TBB_H)
bench_pfor_tbb_CXXFLAGS = $(AM_CXXFLAGS) $(TBB_CFLAGS)
bench_pfor_tbb_LDADD = $(TBB_LIBS)

if HAVE_NETTLE
noinst_PROGRAMS += bench/uts_tbb
bench_uts_tbb_SOURCES = bench/uts_tbb.cpp bench/uts_tree.h $(BENCH_TBB_H)
bench_uts_tbb_CXXFLAGS = $(AM_CXXFLAGS) $(TBB_CFLAGS) $(NETTLE_CFLAGS)
bench_uts_tbb_LDADD = $(TBB_LIBS) $(NETTLE_LIBS) -lm
endif
endif

EXTRA_DIST += bench/run bench/plot bench/README.md

# `make bench`: build everything, then run the suite on this build.
.PHONY: bench
bench: $(noinst_PROGRAMS)
	$(top_srcdir)/bench/run --build $(abs_builddir) $(BENCH_ARGS)
	@if command -v gnuplot >/dev/null; then $(top_srcdir)/bench/plot; \
	else echo "bench: install gnuplot-nox for the plots (bench/plot)"; fi
