# tests/io.mk: Criterion tests of the event-completion layer (fibers, I/O
# operations, timers).  Every test runs on both backends (io_uring and
# epoll; see IO_TEST in tests/test_io_util.h).  Sizes shrink under
# WEFT_TEST_QUICK=1 (tests/test_util.h).

if HAVE_CRITERION
WEFT_IO_TESTS = \
	tests/test_fiber \
	tests/test_timer \
	tests/test_io \
	tests/test_io_cancel \
	tests/test_io_errors \
	tests/test_io_accept \
	tests/test_io_help \
	tests/test_io_epoll
check_PROGRAMS += $(WEFT_IO_TESTS)
TESTS += $(WEFT_IO_TESTS)

WEFT_IO_TEST_CPPFLAGS = $(AM_CPPFLAGS) $(CRITERION_CFLAGS) $(URING_CFLAGS)
WEFT_IO_TEST_LDADD = libweft_core.la $(CRITERION_LIBS) $(CK_LIBS) $(URING_LIBS) -lpthread
WEFT_IO_TEST_COMMON = tests/test_util.h tests/test_io_util.h tests/tsan_criterion.c

tests_test_fiber_SOURCES = tests/test_fiber.c $(WEFT_IO_TEST_COMMON)
tests_test_fiber_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_fiber_LDADD = $(WEFT_IO_TEST_LDADD) -lm

tests_test_timer_SOURCES = tests/test_timer.c $(WEFT_IO_TEST_COMMON)
tests_test_timer_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_timer_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_SOURCES = tests/test_io.c $(WEFT_IO_TEST_COMMON)
tests_test_io_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_cancel_SOURCES = tests/test_io_cancel.c $(WEFT_IO_TEST_COMMON)
tests_test_io_cancel_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_cancel_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_help_SOURCES = tests/test_io_help.c $(WEFT_IO_TEST_COMMON)
tests_test_io_help_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_help_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_errors_SOURCES = tests/test_io_errors.c $(WEFT_IO_TEST_COMMON)
tests_test_io_errors_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_errors_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_epoll_SOURCES = tests/test_io_epoll.c $(WEFT_IO_TEST_COMMON)
tests_test_io_epoll_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_epoll_LDADD = $(WEFT_IO_TEST_LDADD)

tests_test_io_accept_SOURCES = tests/test_io_accept.c $(WEFT_IO_TEST_COMMON)
tests_test_io_accept_CPPFLAGS = $(WEFT_IO_TEST_CPPFLAGS)
tests_test_io_accept_LDADD = $(WEFT_IO_TEST_LDADD)
endif
