# tools/load.mk: weft-load, the open-loop HTTP load generator (installed),
# and the Criterion test of its histogram.
#
# weft-load links the public library only, like any program using weft.
# tools/hist.c is also compiled into tests/test_hist.

bin_PROGRAMS += tools/weft-load
tools_weft_load_SOURCES = tools/weft_load.c tools/hist.h tools/hist.c
tools_weft_load_CPPFLAGS = $(AM_CPPFLAGS)
tools_weft_load_LDADD = libweft.la -lpthread

if HAVE_CRITERION
check_PROGRAMS += tests/test_hist
TESTS += tests/test_hist
tests_test_hist_SOURCES = tests/test_hist.c tools/hist.h tools/hist.c tests/tsan_criterion.c
tests_test_hist_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools $(CRITERION_CFLAGS)
tests_test_hist_LDADD = $(CRITERION_LIBS) -lpthread -lm
endif
