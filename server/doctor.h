/* `tether --check-config [options]`: prints, a line each, what the server
 * would use and where it was found (binary, web page, prompt templates,
 * tokenizer ranks, data directory, listen addresses, TLS pair, auth mode), checks
 * each without starting (prompts parsed, ranks loaded, the data directory
 * diagnosed as at start-up, addresses resolved, the TLS pair loaded and
 * matched), and returns 0 when the
 * server would start, 1 when it would not. Missing tokenizer ranks are a
 * warning (estimates), not a failure. */
#ifndef TT_DOCTOR_H
#define TT_DOCTOR_H

#include <stdio.h>

#include "server/config.h"

int tt_doctor(tt_config *cfg, FILE *out);

#endif
