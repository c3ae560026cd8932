/*
 * trace_text.c: text helpers shared by weft-trace's writers: durations for
 * people, and escaping of arbitrary bytes (symbol names, file names) into
 * JSON strings and XML text.  Invalid UTF-8 becomes U+FFFD, and control
 * characters that XML 1.0 cannot carry at all become '?', so the outputs
 * stay well-formed whatever the trace holds.
 */
#include "trace_out.h"

#include <string.h>

void wt_fmt_dur(char *buf, size_t n, double ns)
{
	double a = ns < 0 ? -ns : ns;

	if (a < 1e3)
		snprintf(buf, n, "%.0f ns", ns);
	else if (a < 1e6)
		snprintf(buf, n, "%.*f us", a < 1e4 ? 2 : a < 1e5 ? 1 : 0, ns / 1e3);
	else if (a < 1e9)
		snprintf(buf, n, "%.*f ms", a < 1e7 ? 2 : a < 1e8 ? 1 : 0, ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", ns / 1e9);
}

size_t wt_utf8_len(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t n, i;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void wt_put_json(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		size_t n = wt_utf8_len(p, left);

		if (n == 0) {
			fputs("\\ufffd", f);
			n = 1;
		} else if (n > 1) {
			fwrite(p, 1, n, f);
		} else if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p, f);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fputc(*p, f);
		}
		p += n;
		left -= n;
	}
}

void wt_put_xml(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		size_t n = wt_utf8_len(p, left);

		if (n == 0 || (n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe)) {
			fputs("&#xFFFD;", f); /* invalid, or U+FFFE/U+FFFF (not XML) */
			n = n ? n : 1;
		} else if (n > 1) {
			fwrite(p, 1, n, f);
		} else {
			switch (*p) {
			case '&': fputs("&amp;", f); break;
			case '<': fputs("&lt;", f); break;
			case '>': fputs("&gt;", f); break;
			case '"': fputs("&quot;", f); break;
			case '\'': fputs("&apos;", f); break;
			default:
				fputc((*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : *p, f);
			}
		}
		p += n;
		left -= n;
	}
}
