/* Naming what is wrong with the data directory (see datadir.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "server/datadir.h"

#define LOCK_NAME "tether.lock" /* state/store.c's lock file */

/* src into dst (size n), cut to fit. */
static void copy(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* dir + "/" + name into out (size n); -1 when it does not fit. */
static int join(char *out, size_t n, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b >= n)
        return -1;
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
    return 0;
}

static void set(tt_datadir_report *r, tt_datadir_state st, const char *msg, const char *path)
{
    r->state = st;
    r->message = msg;
    copy(r->path, sizeof r->path, path);
}

/* The pid the holder wrote into the lock file (state/store.c), or 0. */
static long lock_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\0' || *end == '\n') ? pid : 0;
}

static void check_full(const char *path, tt_datadir_report *r)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) == 0 && vfs.f_bavail == 0)
        set(r, TT_DATADIR_FULL, "the file system of the data directory has no free space", path);
}

/* An existing directory: access, the lock, free space. */
static void check_existing(const char *dir, tt_datadir_report *r)
{
    r->exists = 1;
    if (access(dir, R_OK | W_OK | X_OK) != 0) {
        set(r, TT_DATADIR_DENIED,
            "permission denied: the data directory must be readable and "
            "writable by the server's user",
            dir);
        return;
    }
    char lock[1100];
    if (join(lock, sizeof lock, dir, LOCK_NAME) != 0)
        return;
    int fd = open(lock, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        set(r, TT_DATADIR_DENIED, "permission denied: the lock file cannot be opened", lock);
        return;
    }
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            set(r, TT_DATADIR_HELD, "another server holds the data directory", dir);
            r->pid = lock_pid(fd);
        }
        close(fd); /* lets go of the lock if we took it */
        if (r->state)
            return;
    }
    char data[1100];
    if (join(data, sizeof data, dir, "data.mdb") != 0)
        return;
    if (access(data, F_OK) == 0 && access(data, R_OK | W_OK) != 0) {
        set(r, TT_DATADIR_DENIED, "permission denied: data.mdb is not readable and writable", data);
        return;
    }
    check_full(dir, r);
}

/* A directory still to be created: its parent must be there and writable. */
static void check_parent(const char *dir, tt_datadir_report *r)
{
    char parent[1024];
    copy(parent, sizeof parent, dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        copy(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(parent, &st) != 0)
        set(r,
            errno == ENOTDIR  ? TT_DATADIR_NOT_DIR
            : errno == EACCES ? TT_DATADIR_DENIED
                              : TT_DATADIR_NO_PARENT,
            errno == ENOTDIR  ? "a component of the data directory's path is not a directory"
            : errno == EACCES ? "permission denied: a directory on the path cannot be searched"
                              : "the data directory's parent does not exist (create it first)",
            parent);
    else if (!S_ISDIR(st.st_mode))
        set(r, TT_DATADIR_NOT_DIR, "the data directory's parent is not a directory", parent);
    else if (access(parent, W_OK | X_OK) != 0)
        set(r, TT_DATADIR_DENIED,
            "permission denied: the data directory cannot be created in its parent", parent);
    else
        check_full(parent, r);
}

void tt_datadir_check(const char *dir, tt_datadir_report *r)
{
    memset(r, 0, sizeof *r);
    r->message = "";
    copy(r->path, sizeof r->path, dir);
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            set(r, TT_DATADIR_NOT_DIR, "the data directory is not a directory", dir);
        else
            check_existing(dir, r);
    } else if (errno == ENOENT) {
        check_parent(dir, r);
    } else if (errno == ENOTDIR) {
        set(r, TT_DATADIR_NOT_DIR, "a component of the data directory's path is not a directory",
            dir);
    } else if (errno == EACCES) {
        set(r, TT_DATADIR_DENIED, "permission denied: a directory on the path cannot be searched",
            dir);
    }
}

void tt_datadir_check_new(const char *dir, tt_datadir_report *r)
{
    memset(r, 0, sizeof *r);
    r->message = "";
    char data[1100];
    if (join(data, sizeof data, dir, "data.mdb") == 0 && access(data, F_OK) == 0)
        return;
    char where[1024];
    copy(where, sizeof where, dir);
    struct statvfs vfs;
    while (statvfs(where, &vfs) != 0) { /* not there yet: its nearest existing ancestor */
        char *slash = strrchr(where, '/');
        if (!slash && strcmp(where, ".") != 0)
            copy(where, sizeof where, ".");
        else if (!slash || slash == where)
            return; /* tt_datadir_check names the cause when the open fails */
        else
            *slash = '\0';
    }
    if ((unsigned long long)vfs.f_bavail * vfs.f_frsize < TT_DATADIR_NEW_MIN_FREE)
        set(r, TT_DATADIR_FULL, "the file system of the data directory has no room for a new store",
            where);
}
