/* The start-up benchmark's launcher (tests/bench/startup.mjs): the moment
 * the measured server begins, so that its own start-up can be told apart
 * from the benchmark's spawn. Node's spawn (a fork of a large process, and
 * before this a shell raising the fd limit) costs tens of milliseconds of
 * wall time and several of CPU before the server's exec; this program takes
 * the shell's place.
 *
 *   bench_exec_at PROGRAM [ARG...]
 *
 * raises the soft descriptor limit to the hard one (as `ulimit -n $(ulimit
 * -Hn)` did), writes one line to descriptor 3 when it is open,
 *
 *   {"exec_mono_ns":N,"cpu_ns":C}
 *
 * (CLOCK_MONOTONIC, the clock of Node's process.hrtime, and the CPU time
 * this process has used so far, the fork included), closes it, and execs
 * PROGRAM with the environment unchanged. Exit 127 when the exec fails.
 * Not a test: built beside tether (<build>/bench_exec_at), not installed. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0)
        return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_exec_at PROGRAM [ARG...]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    char line[128];
    int n = snprintf(line, sizeof line, "{\"exec_mono_ns\":%lld,\"cpu_ns\":%lld}\n",
                     ns(CLOCK_MONOTONIC), ns(CLOCK_PROCESS_CPUTIME_ID));
    ssize_t w = write(3, line, (size_t)n); /* EBADF: no descriptor 3, nobody asked */
    (void)w;
    (void)close(3);
    execv(argv[1], argv + 1);
    fprintf(stderr, "bench_exec_at: cannot run %s\n", argv[1]);
    return 127;
}
