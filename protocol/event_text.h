/* The hot session event, written without a jansson tree: a streamed
 * message's delta is {"type","session","seq","ts","message_id","text"}, one
 * per provider chunk, and building it with json_pack and dumping it with
 * json_dumpb was a third of the server's CPU per relayed chunk (issue 18).
 *
 * The bytes are exactly those tt_event_encode() gives for the body
 * {"message_id": id, "text": text} (event.h: same keys, same order, same
 * escapes as jansson's JSON_COMPACT dump: \" \\ \b \f \n \r \t, other control
 * characters as \u00XX, everything else as is), so a reader cannot tell the
 * two apart; tests/unit/test_event_text.c checks it against jansson. */
#ifndef TT_EVENT_TEXT_H
#define TT_EVENT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/event.h"

#include "protocol/utf8.h" /* tt_utf8_valid() */

/* Encode the event {type, session: sid, seq, ts, message_id: id, text}.
 * 0; TT_EINVAL (a NULL or a string that is not UTF-8: nothing encoded),
 * TT_ETOOLARGE (past TT_EVENT_TEXT_MAX) or TT_ENOMEM. */
#define TT_EVENT_TEXT_MAX (64u << 20)
int tt_event_encode_text(const char *type, const char *sid, uint64_t seq, int64_t ts_ms,
                         const char *id, const char *text, size_t len, size_t headroom,
                         tt_frame *out);

#endif
