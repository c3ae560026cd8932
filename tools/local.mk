# tools/local.mk: weft-trace, the trace viewer (installed).
#
# It reads trace files only (runtime/trace_format.h) and does not link
# libweft.  Its sources other than the command itself are listed in
# WEFT_TRACE_LIB_SOURCES so that tests/trace.mk can compile them into the
# test program too.

WEFT_TRACE_LIB_SOURCES = \
	runtime/trace_format.h \
	tools/trace_read.h tools/trace_read.c \
	tools/trace_sym.h tools/trace_sym.c \
	tools/trace_model.h tools/trace_model.c \
	tools/trace_out.h tools/trace_text.c \
	tools/trace_json.c \
	tools/trace_svg.c \
	tools/trace_summary.c

bin_PROGRAMS += tools/weft-trace
tools_weft_trace_SOURCES = tools/weft_trace.c $(WEFT_TRACE_LIB_SOURCES)
tools_weft_trace_CPPFLAGS = $(AM_CPPFLAGS)
tools_weft_trace_LDADD = -lm
