/* Upgrade without a gap on one machine (server/README.md, "Upgrade").
 *
 * The new process (--takeover on) binds the port beside the old one
 * (SO_REUSEPORT, listener.c), reads the old one's pid from the data
 * directory's lock file and sends it SIGUSR2, then waits at start-up (before
 * its loop runs) for the lock. Connections that reach it meanwhile wait in
 * its listen backlog and are served once the store is open.
 *
 * The old process, on SIGUSR2: takes what is queued on its listener and
 * closes it, lets the turns in flight finish (--upgrade-grace-ms at most;
 * a request that would start a turn meanwhile closes its socket with 1012
 * unapplied, requests.c, so the new process takes it),
 * then stops as on SIGTERM but closes its sockets with 1012 (service
 * restart): everything committed, LMDB closed, exit 0. Clients reconnect
 * and resume by seq on the new process. A turn still running when the grace
 * period ends stays marked active and is resumed by the new process as after
 * any restart.
 *
 * Ownership: each process that opens the store as writer takes the next
 * epoch ("owner_epoch" in LMDB meta, with "owner_pid"); on one machine the
 * lock file is the fence, the epoch says in the log who held the sessions. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "server/logging.h"
#include "server/server.h"

#define UPGRADE_POLL_MS 20           /* how often the old process counts running turns */
#define TAKEOVER_WAIT_EXTRA_MS 10000 /* beyond the graces: the old process's own close */
#define EPOCH_KEY "owner_epoch"
#define OWNER_PID_KEY "owner_pid"

int tt_upgrade_prepare(tt_server *srv, int64_t *lock_wait_ms)
{
    *lock_wait_ms = 0;
    /* Until tt_upgrade_watch() handles it, a SIGUSR2 (a takeover begun while
     * this process is still starting) is ignored rather than fatal: the new
     * process then waits in vain and exits 1, and this one serves on. */
    (void)signal(SIGUSR2, SIG_IGN);
    if (strcmp(srv->cfg.takeover, "on") != 0)
        return 0;
    long pid = 0;
    int rc = tt_store_lock_holder(srv->cfg.data_dir, &pid);
    if (rc == TT_ENOTFOUND) {
        tt_log(TT_INFO, "takeover: no running tether holds the data directory; starting as usual",
               json_pack("{s:s}", "data_dir", srv->cfg.data_dir));
        return 0;
    }
    if (rc) {
        tt_log(TT_ERROR,
               "takeover: the data directory is held by a process whose pid is not in its lock "
               "file (a version without upgrades?); stop it instead",
               json_pack("{s:s}", "data_dir", srv->cfg.data_dir));
        return rc;
    }
    if ((rc = tt_listener_open(srv)) != 0)
        return rc;
    if (kill((pid_t)pid, SIGUSR2) != 0) {
        tt_log(TT_ERROR, "takeover: cannot signal the running tether",
               json_pack("{s:I, s:s}", "pid", (json_int_t)pid, "error", strerror(errno)));
        return TT_EIO;
    }
    *lock_wait_ms = srv->cfg.upgrade_grace_ms + srv->cfg.shutdown_grace_ms + TAKEOVER_WAIT_EXTRA_MS;
    srv->takeover_from = pid;
    tt_log(TT_INFO, "takeover: asked the running tether to hand over",
           json_pack("{s:I, s:I}", "pid", (json_int_t)pid, "wait_ms", (json_int_t)*lock_wait_ms));
    return 0;
}

static int put_owner(tt_store_txn *txn, void *ctx)
{
    const char *const *kv = ctx;
    int rc = tt_store_put_meta(txn, EPOCH_KEY, kv[0], strlen(kv[0]));
    return rc ? rc : tt_store_put_meta(txn, OWNER_PID_KEY, kv[1], strlen(kv[1]));
}

int tt_upgrade_claim(tt_server *srv)
{
    char *old = NULL;
    size_t len = 0;
    int rc = tt_store_get_meta(srv->store, EPOCH_KEY, &old, &len);
    if (rc && rc != TT_ENOTFOUND)
        return rc;
    unsigned long long prev = old ? strtoull(old, NULL, 10) : 0;
    free(old);
    char epoch[24], pid[24];
    snprintf(epoch, sizeof epoch, "%llu", prev + 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    const char *kv[2] = {epoch, pid};
    if ((rc = tt_store_write(srv->store, put_owner, kv)) != 0)
        return rc;
    srv->owner_epoch = prev + 1;
    tt_log(TT_INFO, "data directory owned",
           json_pack("{s:I, s:I, s:I}", "epoch", (json_int_t)srv->owner_epoch, "taken_from_pid",
                     (json_int_t)srv->takeover_from, "wait_ms",
                     (json_int_t)((uv_hrtime() - srv->started_ns) / 1000000)));
    return 0;
}

static void count_running(tt_session *s, void *ud)
{
    if (s->state == TT_STATE_RUNNING)
        (*(size_t *)ud)++;
}

static size_t running_turns(tt_server *srv)
{
    size_t n = 0;
    if (srv->reg)
        tt_registry_foreach(srv->reg, count_running, &n);
    return n;
}

static void on_handover_check(uv_timer_t *t)
{
    tt_server *srv = t->data;
    if (srv->stopping) { /* a SIGTERM came first: that stop goes on */
        uv_timer_stop(t);
        return;
    }
    size_t running = running_turns(srv);
    uint64_t now = uv_now(&srv->loop);
    if (running > 0 && now < srv->handover_deadline)
        return;
    uv_timer_stop(t);
    tt_log(running ? TT_WARN : TT_INFO, "handing over: closing sockets with 1012",
           json_pack("{s:I, s:I, s:I}", "turns_left_running", (json_int_t)running,
                     "requests_left_to_new_process", (json_int_t)srv->handover_deferred,
                     "waited_ms", (json_int_t)(now - srv->handover_started)));
    tt_server_stop_code(srv, TT_CLOSE_SERVICE_RESTART, "service restart");
}

static void on_sigusr2(uv_signal_t *h, int signum)
{
    tt_server *srv = h->data;
    (void)signum;
    if (srv->stopping || srv->handing_over)
        return;
    srv->handing_over = 1;
    srv->ready = 0;
    srv->handover_started = uv_now(&srv->loop);
    srv->handover_deadline = srv->handover_started + (uint64_t)srv->cfg.upgrade_grace_ms;
    tt_listener_hand_over(srv);
    tt_log(TT_INFO, "handing over to a new process: not accepting, finishing turns",
           json_pack("{s:I, s:I}", "running_turns", (json_int_t)running_turns(srv), "grace_ms",
                     (json_int_t)srv->cfg.upgrade_grace_ms));
    (void)uv_timer_start(&srv->upgrade_timer, on_handover_check, 0, UPGRADE_POLL_MS);
}

int tt_upgrade_watch(tt_server *srv)
{
    int rc = uv_signal_init(&srv->loop, &srv->sigusr2);
    if (rc)
        return TT_EIO;
    (void)uv_timer_init(&srv->loop, &srv->upgrade_timer); /* only fills the struct */
    srv->sigusr2.data = srv->upgrade_timer.data = srv;
    srv->upgrade_open = 1;
    if (uv_signal_start(&srv->sigusr2, on_sigusr2, SIGUSR2) != 0)
        return TT_EIO;
    uv_unref((uv_handle_t *)&srv->sigusr2);
    return 0;
}

void tt_upgrade_close(tt_server *srv)
{
    if (!srv->upgrade_open)
        return;
    uv_close((uv_handle_t *)&srv->sigusr2, NULL); /* restores SIGUSR2's default: fatal */
    uv_close((uv_handle_t *)&srv->upgrade_timer, NULL);
    srv->upgrade_open = 0;
    (void)signal(SIGUSR2, SIG_IGN); /* a later takeover while this one closes is not fatal */
}
