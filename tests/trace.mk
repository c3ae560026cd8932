# tests/trace.mk: tests of the trace viewer, tools/weft-trace (see
# tests/test_weft_trace.c).  The test program compiles the tool's sources
# other than its main (WEFT_TRACE_LIB_SOURCES, tools/local.mk) and links
# libweft_core.la for the end-to-end test of the runtime's trace writer.
# The command-line tests run the built tool, found through WEFT_TRACE_TOOL;
# make check builds it first (check depends on all, and it is a bin program).

if HAVE_CRITERION
check_PROGRAMS += tests/test_weft_trace
TESTS += tests/test_weft_trace

tests_test_weft_trace_SOURCES = tests/test_weft_trace.c tests/test_util.h tests/tsan_criterion.c \
	$(WEFT_TRACE_LIB_SOURCES)
tests_test_weft_trace_CPPFLAGS = $(AM_CPPFLAGS) $(CRITERION_CFLAGS) -I$(top_srcdir)/tools
tests_test_weft_trace_LDADD = libweft_core.la $(CRITERION_LIBS) $(CK_LIBS) -lpthread -lm
endif

AM_TESTS_ENVIRONMENT += WEFT_TRACE_TOOL=$(abs_top_builddir)/tools/weft-trace$(EXEEXT); export WEFT_TRACE_TOOL;
