/* A document's bytes to plain text (retrieval.h): text and Markdown as they
 * are (checked UTF-8), HTML through a small extractor, PDF through Debian's
 * `pdftotext` (poppler-utils). Pure functions of their input, any thread;
 * tt_extract_pdf() starts a process and waits for it, so it runs in the
 * thread pool only. */
#ifndef TT_EXTRACT_H
#define TT_EXTRACT_H

#include <stddef.h>

#include "protocol/buf.h"

typedef enum tt_doc_type {
    TT_DOC_TEXT,
    TT_DOC_MARKDOWN,
    TT_DOC_HTML,
    TT_DOC_PDF,
    TT_DOC__LAST
} tt_doc_type;

#define TT_EXTRACT_PDF_TIMEOUT_MS 20000 /* pdftotext is killed past this */
#define TT_EXTRACT_PDFTOTEXT "pdftotext"

/* "text", "markdown", "html", "pdf": 0 and *out, or TT_EINVAL. */
int tt_doc_type_parse(const char *s, tt_doc_type *out);
const char *tt_doc_type_name(tt_doc_type t);

/* Text or Markdown: in[0..n) must be UTF-8 without NUL bytes; CRLF becomes
 * LF. Appended to out (its cap is the text limit). 0, TT_EINVAL with *why
 * ("not UTF-8 text", ...), or out's TT_ETOOLARGE / TT_ENOMEM. */
int tt_extract_text(const char *in, size_t n, tt_buf *out, const char **why);

/* HTML to text: comments, <script>, <style>, <noscript>, <template>,
 * <svg> and <head> (but its <title>) dropped with their content, every
 * other tag dropped; block elements end lines, <p>, <li>, <tr>, <br> as
 * well; <h1>..<h6> become Markdown headings ("## " ...) so the chunker can
 * break at them; entities decoded (the common named ones, &#N; and &#xH;;
 * an unknown one is kept as written, a code point that is not a valid
 * character becomes U+FFFD); runs of spaces and blank lines collapsed. The
 * input must be UTF-8 (TT_EINVAL otherwise). */
int tt_extract_html(const char *in, size_t n, tt_buf *out, const char **why);

/* PDF to text with `pdftotext -enc UTF-8 -nopgbrk -q FILE -` (the bytes in
 * a private temporary file in $TMPDIR or /tmp, removed after). Blocking:
 * thread pool only. A file that does not start with "%PDF-", that
 * pdftotext refuses, or that holds no text (a scanned image) is
 * TT_EINVAL with *why; no pdftotext installed is TT_ENOTFOUND; past
 * TT_EXTRACT_PDF_TIMEOUT_MS the process is killed and TT_ETOOLARGE
 * returned. Output past out's cap is TT_ETOOLARGE. */
int tt_extract_pdf(const char *in, size_t n, tt_buf *out, const char **why);

/* Any type: the function above for it. */
int tt_extract(tt_doc_type t, const char *in, size_t n, tt_buf *out, const char **why);

#endif
