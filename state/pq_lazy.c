/* libpq, loaded when first needed rather than when the process starts (see
 * pq_lazy.h). Each libpq function Tether calls is defined here under its own
 * name and forwards to the one dlsym() found, so callers include
 * <libpq-fe.h> and call libpq as usual; the binary does not list libpq.so.5
 * as needed. These definitions are not exported (an executable exports only
 * what a library it links refers to), so libpq's own calls stay inside it. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "protocol/dl.h"
#include "protocol/errors.h"
#include "state/pq_lazy.h"

#define LIBPQ_SONAME "libpq.so.5"

static const char no_lib[] = "libpq is not loaded\n";

static struct {
    PGconn *(*PQconnectStart)(const char *conninfo);
    PostgresPollingStatusType (*PQconnectPoll)(PGconn *conn);
    void (*PQfinish)(PGconn *conn);
    PQconninfoOption *(*PQconninfoParse)(const char *conninfo, char **errmsg);
    void (*PQconninfoFree)(PQconninfoOption *opts);
    ConnStatusType (*PQstatus)(const PGconn *conn);
    char *(*PQerrorMessage)(const PGconn *conn);
    int (*PQsocket)(const PGconn *conn);
    PQnoticeProcessor (*PQsetNoticeProcessor)(PGconn *conn, PQnoticeProcessor proc, void *arg);
    int (*PQsendQuery)(PGconn *conn, const char *query);
    int (*PQsendQueryParams)(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                             const char *const *paramValues, const int *paramLengths,
                             const int *paramFormats, int resultFormat);
    PGresult *(*PQgetResult)(PGconn *conn);
    int (*PQisBusy)(PGconn *conn);
    int (*PQconsumeInput)(PGconn *conn);
    PGnotify *(*PQnotifies)(PGconn *conn);
    int (*PQsetnonblocking)(PGconn *conn, int arg);
    int (*PQflush)(PGconn *conn);
    ExecStatusType (*PQresultStatus)(const PGresult *res);
    char *(*PQresultErrorMessage)(const PGresult *res);
    int (*PQntuples)(const PGresult *res);
    char *(*PQgetvalue)(const PGresult *res, int tup_num, int field_num);
    int (*PQgetlength)(const PGresult *res, int tup_num, int field_num);
    int (*PQgetisnull)(const PGresult *res, int tup_num, int field_num);
    void (*PQclear)(PGresult *res);
    void (*PQfreemem)(void *ptr);
    char *(*PQescapeIdentifier)(PGconn *conn, const char *str, size_t len);
} P;

static const tt_dl_sym syms[] = {
    TT_DL_SYM(__typeof__(P), PQconnectStart, "PQconnectStart"),
    TT_DL_SYM(__typeof__(P), PQconnectPoll, "PQconnectPoll"),
    TT_DL_SYM(__typeof__(P), PQfinish, "PQfinish"),
    TT_DL_SYM(__typeof__(P), PQconninfoParse, "PQconninfoParse"),
    TT_DL_SYM(__typeof__(P), PQconninfoFree, "PQconninfoFree"),
    TT_DL_SYM(__typeof__(P), PQstatus, "PQstatus"),
    TT_DL_SYM(__typeof__(P), PQerrorMessage, "PQerrorMessage"),
    TT_DL_SYM(__typeof__(P), PQsocket, "PQsocket"),
    TT_DL_SYM(__typeof__(P), PQsetNoticeProcessor, "PQsetNoticeProcessor"),
    TT_DL_SYM(__typeof__(P), PQsendQuery, "PQsendQuery"),
    TT_DL_SYM(__typeof__(P), PQsendQueryParams, "PQsendQueryParams"),
    TT_DL_SYM(__typeof__(P), PQgetResult, "PQgetResult"),
    TT_DL_SYM(__typeof__(P), PQisBusy, "PQisBusy"),
    TT_DL_SYM(__typeof__(P), PQconsumeInput, "PQconsumeInput"),
    TT_DL_SYM(__typeof__(P), PQnotifies, "PQnotifies"),
    TT_DL_SYM(__typeof__(P), PQsetnonblocking, "PQsetnonblocking"),
    TT_DL_SYM(__typeof__(P), PQflush, "PQflush"),
    TT_DL_SYM(__typeof__(P), PQresultStatus, "PQresultStatus"),
    TT_DL_SYM(__typeof__(P), PQresultErrorMessage, "PQresultErrorMessage"),
    TT_DL_SYM(__typeof__(P), PQntuples, "PQntuples"),
    TT_DL_SYM(__typeof__(P), PQgetvalue, "PQgetvalue"),
    TT_DL_SYM(__typeof__(P), PQgetlength, "PQgetlength"),
    TT_DL_SYM(__typeof__(P), PQgetisnull, "PQgetisnull"),
    TT_DL_SYM(__typeof__(P), PQclear, "PQclear"),
    TT_DL_SYM(__typeof__(P), PQfreemem, "PQfreemem"),
    TT_DL_SYM(__typeof__(P), PQescapeIdentifier, "PQescapeIdentifier"),
};

static tt_dl_lib lib = {.soname = LIBPQ_SONAME,
                        .syms = syms,
                        .n_syms = sizeof syms / sizeof syms[0],
                        .table = &P,
                        .lock = PTHREAD_MUTEX_INITIALIZER};

int tt_pq_loaded(void)
{
    return tt_dl_loaded(&lib);
}

int tt_pq_load(void)
{
    return tt_dl_load(&lib);
}

const char *tt_pq_error(void)
{
    return tt_dl_error(&lib);
}

/* ---- libpq's functions: load on first use, else fail as libpq would ----- */

PGconn *PQconnectStart(const char *conninfo)
{
    return tt_pq_load() ? NULL : P.PQconnectStart(conninfo);
}

PostgresPollingStatusType PQconnectPoll(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQconnectPoll(conn) : PGRES_POLLING_FAILED;
}

void PQfinish(PGconn *conn)
{
    if (tt_pq_loaded())
        P.PQfinish(conn);
}

PQconninfoOption *PQconninfoParse(const char *conninfo, char **errmsg)
{
    if (tt_pq_load()) {
        if (errmsg)
            *errmsg = NULL; /* as libpq says out of memory */
        return NULL;
    }
    return P.PQconninfoParse(conninfo, errmsg);
}

void PQconninfoFree(PQconninfoOption *opts)
{
    if (tt_pq_loaded())
        P.PQconninfoFree(opts);
}

ConnStatusType PQstatus(const PGconn *conn)
{
    return tt_pq_loaded() ? P.PQstatus(conn) : CONNECTION_BAD;
}

char *PQerrorMessage(const PGconn *conn)
{
    return tt_pq_loaded() ? P.PQerrorMessage(conn) : (char *)no_lib;
}

int PQsocket(const PGconn *conn)
{
    return tt_pq_loaded() ? P.PQsocket(conn) : -1;
}

PQnoticeProcessor PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg)
{
    return tt_pq_loaded() ? P.PQsetNoticeProcessor(conn, proc, arg) : NULL;
}

int PQsendQuery(PGconn *conn, const char *query)
{
    return tt_pq_loaded() ? P.PQsendQuery(conn, query) : 0;
}

int PQsendQueryParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                      const char *const *paramValues, const int *paramLengths,
                      const int *paramFormats, int resultFormat)
{
    return tt_pq_loaded() ? P.PQsendQueryParams(conn, command, nParams, paramTypes, paramValues,
                                                paramLengths, paramFormats, resultFormat)
                          : 0;
}

PGresult *PQgetResult(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQgetResult(conn) : NULL;
}

int PQisBusy(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQisBusy(conn) : 0;
}

int PQconsumeInput(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQconsumeInput(conn) : 0;
}

PGnotify *PQnotifies(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQnotifies(conn) : NULL;
}

int PQsetnonblocking(PGconn *conn, int arg)
{
    return tt_pq_loaded() ? P.PQsetnonblocking(conn, arg) : -1;
}

int PQflush(PGconn *conn)
{
    return tt_pq_loaded() ? P.PQflush(conn) : -1;
}

ExecStatusType PQresultStatus(const PGresult *res)
{
    return tt_pq_loaded() ? P.PQresultStatus(res) : PGRES_FATAL_ERROR;
}

char *PQresultErrorMessage(const PGresult *res)
{
    return tt_pq_loaded() ? P.PQresultErrorMessage(res) : (char *)no_lib;
}

int PQntuples(const PGresult *res)
{
    return tt_pq_loaded() ? P.PQntuples(res) : 0;
}

char *PQgetvalue(const PGresult *res, int tup_num, int field_num)
{
    return tt_pq_loaded() ? P.PQgetvalue(res, tup_num, field_num) : NULL;
}

int PQgetlength(const PGresult *res, int tup_num, int field_num)
{
    return tt_pq_loaded() ? P.PQgetlength(res, tup_num, field_num) : 0;
}

int PQgetisnull(const PGresult *res, int tup_num, int field_num)
{
    return tt_pq_loaded() ? P.PQgetisnull(res, tup_num, field_num) : 1;
}

void PQclear(PGresult *res)
{
    if (tt_pq_loaded())
        P.PQclear(res);
}

void PQfreemem(void *ptr)
{
    if (tt_pq_loaded())
        P.PQfreemem(ptr);
}

char *PQescapeIdentifier(PGconn *conn, const char *str, size_t len)
{
    return tt_pq_loaded() ? P.PQescapeIdentifier(conn, str, len) : NULL;
}
