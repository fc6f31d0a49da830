/*
 * faultshim: an LD_PRELOAD library that makes one process's disk fail on cue, and records what
 * it wrote and synced so that a power cut can be replayed afterwards.
 *
 * Built by benchmarks/reliability/shim.py (gcc -shared -fPIC, cached by the source's hash);
 * used by the reliability battery (benchmarks/reliability/, tests/reliability/).
 *
 * Interface (environment variables, read once when the library loads)
 * --------------------------------------------------------------------
 *   FAULTSHIM_PATH_PREFIX  Required. Only files whose path (as /proc/self/fd/N resolves it) is
 *                          this directory or below it are counted, faulted and journaled: the
 *                          daemon's home. Sockets, pipes and every other file pass through.
 *   FAULTSHIM_FAIL         Rules in force from the start (until the control file replaces them):
 *                            RULE[,RULE...]   RULE = OP:N:ERRNO[:MODE]
 *                          OP     write  (write, pwrite, pwrite64, writev, pwritev)
 *                                 fsync  (fsync, fdatasync)
 *                          N      1-based: the N-th call of that class on an affected file since
 *                                 the rules were (re)loaded
 *                          ERRNO  EIO, ENOSPC, EDQUOT, EROFS, EFBIG, or a number; or
 *                                 delayMS: the call is not failed but first sleeps MS
 *                                 milliseconds (a slow disk), e.g. "fsync:1:delay300:always"
 *                          MODE   once   (default) only the N-th call fails
 *                                 always the N-th call and every later one fail
 *                          e.g. "fsync:1:EIO:always" or "write:3:ENOSPC,fsync:10:EIO".
 *                          A failed call does nothing and returns -1 with that errno.
 *                          The first matching rule applies.
 *   FAULTSHIM_CONTROL      A file whose contents, once it exists, are the rules (same syntax;
 *                          empty or "off" means no faults). It is checked (one stat) before every
 *                          affected call and re-read when its inode, size or mtime changes; the
 *                          counters restart from 0 at each reload. Replace it atomically (write
 *                          a temp file, rename): shim.py's set_faults() does. This is how a test
 *                          makes the disk "fail" and then "recover" without restarting anything.
 *   FAULTSHIM_REPORT       A file to which each injected fault appends one line:
 *                            fault op=<class> call=<function> n=<count> errno=<name> path=<file>
 *                          (a delay: errno=delay<MS>)
 *   FAULTSHIM_JOURNAL      A file to which every successful write, ftruncate and fsync on an
 *                          affected file appends a record (the power-loss model reads it back):
 *                            header, 40 bytes little-endian:
 *                              u32 magic 0x314a5346 ("FSJ1"), u32 op (1 write, 2 sync,
 *                              3 truncate, 4 injected fault), i64 t_ns (CLOCK_MONOTONIC, the
 *                              clock of Python's time.monotonic_ns()), i64 offset (write: file
 *                              offset; truncate: new length; fault: errno), i64 length (write:
 *                              data bytes that follow), u32 path length, u32 reserved
 *                            then the path bytes, then (write) the data.
 *                          A record is appended after the call returned, so a sync record means
 *                          "everything written to this file before it is on the disk".
 *
 * Scope: only the process that loaded the library. The constructor remembers its pid and removes
 * LD_PRELOAD from the environment, so programs it executes do not load the shim, and processes it
 * forks (the daemon's workers) pass every call straight through (getpid() differs).
 *
 * Not modelled: mmap'ed writes (SQLite's -shm index, which it rebuilds after a crash), rename,
 * unlink, fallocate; file creation counts as durable. Calls on fds >= 65536 resolve the path on
 * every call instead of caching it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FD_CACHE 65536
#define MAX_RULES 16
#define MAGIC 0x314a5346u

enum { OP_WRITE = 1, OP_SYNC = 2, OP_TRUNCATE = 3, OP_FAULT = 4 };
enum { CLASS_WRITE = 0, CLASS_FSYNC = 1, CLASSES = 2 };
static const char *CLASS_NAMES[CLASSES] = {"write", "fsync"};

struct rule {
    int class;
    long n;
    int err;
    int always;
    long delay_ms; /* > 0: sleep, then do the call */
};

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_close)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

static pid_t owner = -1;
static char prefix[PATH_MAX];
static size_t prefix_len;
static char control[PATH_MAX];
static char report[PATH_MAX];
static int journal_fd = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Set while this thread is inside the shim: a signal handler that writes (Python's wakeup fd)
 * passes straight through instead of taking the lock again. */
static __thread int inside;

static struct rule rules[MAX_RULES];
static int nrules;
static long counts[CLASSES];
static struct stat control_seen;
static int control_loaded;

/* Per fd: 0 unknown, 1 affected (path in paths[fd]), 2 not affected. */
static signed char scope[FD_CACHE];
static char *paths[FD_CACHE];

static void *resolve(const char *name) { return dlsym(RTLD_NEXT, name); }

static void resolve_all(void) {
    real_write = resolve("write");
    real_pwrite = resolve("pwrite");
    real_pwrite64 = resolve("pwrite64");
    real_writev = resolve("writev");
    real_pwritev = resolve("pwritev");
    real_fsync = resolve("fsync");
    real_fdatasync = resolve("fdatasync");
    real_ftruncate = resolve("ftruncate");
    real_ftruncate64 = resolve("ftruncate64");
    real_close = resolve("close");
    real_dup2 = resolve("dup2");
    real_dup3 = resolve("dup3");
}

static int parse_errno(const char *s) {
    static const struct { const char *name; int value; } names[] = {
        {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
        {"EROFS", EROFS}, {"EFBIG", EFBIG}, {"EACCES", EACCES},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].value;
    int value = atoi(s);
    return value > 0 ? value : EIO;
}

static const char *errno_name(int err) {
    switch (err) {
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EROFS: return "EROFS";
    case EFBIG: return "EFBIG";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

/* Replace the rules with those in `text` (see the header); bad rules are ignored. */
static void parse_rules(const char *text) {
    char buf[1024];
    nrules = 0;
    memset(counts, 0, sizeof counts);
    if (text == NULL) return;
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *item = strtok_r(buf, ", \t\r\n", &save); item && nrules < MAX_RULES;
         item = strtok_r(NULL, ", \t\r\n", &save)) {
        char *fields[4] = {0};
        int nf = 0;
        char *fsave = NULL;
        for (char *f = strtok_r(item, ":", &fsave); f && nf < 4; f = strtok_r(NULL, ":", &fsave))
            fields[nf++] = f;
        if (nf < 3) continue;
        struct rule r = {0};
        if (strcmp(fields[0], "write") == 0) r.class = CLASS_WRITE;
        else if (strcmp(fields[0], "fsync") == 0) r.class = CLASS_FSYNC;
        else continue;
        r.n = atol(fields[1]);
        if (r.n < 1) continue;
        if (strncmp(fields[2], "delay", 5) == 0) r.delay_ms = atol(fields[2] + 5);
        else r.err = parse_errno(fields[2]);
        if (strncmp(fields[2], "delay", 5) == 0 && r.delay_ms < 1) continue;
        r.always = nf == 4 && strcmp(fields[3], "always") == 0;
        rules[nrules++] = r;
    }
}

/* Re-read the control file if it changed since the last look. Called with the lock held. */
static void check_control(void) {
    if (!control[0]) return;
    struct stat st;
    if (stat(control, &st) != 0) {
        if (control_loaded) { /* removed after it was seen: no faults */
            parse_rules(NULL);
            control_loaded = 0;
        }
        return;
    }
    if (control_loaded && st.st_ino == control_seen.st_ino && st.st_size == control_seen.st_size &&
        st.st_mtim.tv_sec == control_seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == control_seen.st_mtim.tv_nsec)
        return;
    char text[1024] = {0};
    int fd = open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t got = read(fd, text, sizeof text - 1);
    real_close(fd);
    text[got > 0 ? got : 0] = 0;
    control_seen = st;
    control_loaded = 1;
    parse_rules(strncmp(text, "off", 3) == 0 ? NULL : text);
}

static int path_affected(const char *path) {
    return prefix_len && strncmp(path, prefix, prefix_len) == 0 &&
           (path[prefix_len] == '/' || path[prefix_len] == 0);
}

/* The path of `fd` if it is affected, else NULL. Called with the lock held. */
static const char *affected(int fd, char *tmp) {
    if (fd >= 0 && fd < FD_CACHE && scope[fd]) return scope[fd] == 1 ? paths[fd] : NULL;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, tmp, PATH_MAX - 1);
    int yes = 0;
    if (len > 0) {
        tmp[len] = 0;
        yes = path_affected(tmp);
    }
    if (fd < 0 || fd >= FD_CACHE) return yes ? tmp : NULL;
    scope[fd] = yes ? 1 : 2;
    if (yes) paths[fd] = strdup(tmp);
    return yes ? paths[fd] : NULL;
}

static void forget(int fd) {
    if (fd < 0 || fd >= FD_CACHE) return;
    scope[fd] = 0;
    free(paths[fd]);
    paths[fd] = NULL;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Append one journal record; `data` is `niov` pieces holding `length` bytes in all. */
static void journal(uint32_t op, const char *path, int64_t offset, const struct iovec *data,
                    int niov, int64_t length) {
    if (journal_fd < 0) return;
    unsigned char header[40];
    uint32_t magic = MAGIC, pathlen = (uint32_t)strlen(path), reserved = 0;
    int64_t t = now_ns();
    memcpy(header, &magic, 4);
    memcpy(header + 4, &op, 4);
    memcpy(header + 8, &t, 8);
    memcpy(header + 16, &offset, 8);
    memcpy(header + 24, &length, 8);
    memcpy(header + 32, &pathlen, 4);
    memcpy(header + 36, &reserved, 4);
    struct iovec iov[2 + 64];
    int n = 0;
    iov[n++] = (struct iovec){header, sizeof header};
    iov[n++] = (struct iovec){(void *)path, pathlen};
    int64_t left = length;
    for (int i = 0; i < niov && left > 0 && n < (int)(sizeof iov / sizeof iov[0]); i++) {
        size_t take = data[i].iov_len < (size_t)left ? data[i].iov_len : (size_t)left;
        iov[n++] = (struct iovec){data[i].iov_base, take};
        left -= (int64_t)take;
    }
    /* Retry short writes so a record is never torn. */
    int first = 0;
    while (first < n) {
        ssize_t wrote = real_writev(journal_fd, iov + first, n - first);
        if (wrote < 0) {
            if (errno == EINTR) continue;
            return;
        }
        while (first < n && (size_t)wrote >= iov[first].iov_len) wrote -= iov[first++].iov_len;
        if (first < n) {
            iov[first].iov_base = (char *)iov[first].iov_base + wrote;
            iov[first].iov_len -= (size_t)wrote;
        }
    }
}

static void report_fault(int class, const char *call, long n, int err, long delay_ms,
                         const char *path) {
    if (err) journal(OP_FAULT, path, err, NULL, 0, 0);
    if (!report[0]) return;
    int fd = open(report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    char what[32];
    if (err) snprintf(what, sizeof what, "%s", errno_name(err));
    else snprintf(what, sizeof what, "delay%ld", delay_ms);
    char line[PATH_MAX + 128];
    int len = snprintf(line, sizeof line, "fault op=%s call=%s n=%ld errno=%s path=%s\n",
                       CLASS_NAMES[class], call, n, what, path);
    if (len > 0) real_write(fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    real_close(fd);
}

/*
 * Start an affected call. Returns NULL when `fd` is not affected (or this is not the process
 * that loaded the shim, or the shim is already on this thread's stack): pass the call through.
 * Otherwise returns the file's path (copied into `tmp`) and sets *err to an errno to inject, or
 * 0; a delay rule has already slept. The caller must call end() after a non-NULL return.
 *
 * The lock covers the fd cache, the rules, the counters and each journal append, never the call
 * itself: the daemon's other threads (the event loop writing to sockets) must not wait for a
 * slow fsync. A file written by several threads at once may so be journaled out of order;
 * SQLite writes each database file from one thread.
 */
static const char *begin(int fd, int class, const char *call, int *err, char *tmp) {
    *err = 0;
    if (owner < 0 || inside || getpid() != owner) return NULL;
    inside = 1;
    pthread_mutex_lock(&lock);
    const char *path = affected(fd, tmp);
    if (path == NULL) {
        pthread_mutex_unlock(&lock);
        inside = 0;
        return NULL;
    }
    if (path != tmp) snprintf(tmp, PATH_MAX, "%s", path);
    check_control();
    long n = ++counts[class];
    long delay_ms = 0;
    for (int i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (r->class == class && (n == r->n || (r->always && n > r->n))) {
            report_fault(class, call, n, r->err, r->delay_ms, tmp);
            *err = r->err;
            delay_ms = r->delay_ms;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (delay_ms > 0) { /* a slow disk: sleep, then do the call */
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return tmp;
}

static void end(void) { inside = 0; }

static void journal_locked(uint32_t op, const char *path, int64_t offset,
                           const struct iovec *data, int niov, int64_t length) {
    pthread_mutex_lock(&lock);
    journal(op, path, offset, data, niov, length);
    pthread_mutex_unlock(&lock);
}

/* The offset a plain write() on `fd` lands at. */
static off_t write_offset(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_APPEND)) {
        struct stat st;
        return fstat(fd, &st) == 0 ? st.st_size : 0;
    }
    off_t off = lseek(fd, 0, SEEK_CUR);
    return off < 0 ? 0 : off;
}

static ssize_t do_write(int fd, const struct iovec *iov, int niov, off_t offset, int positional,
                        const char *call, ssize_t (*io)(int, const struct iovec *, int, off_t)) {
    char tmp[PATH_MAX];
    int err;
    const char *path = begin(fd, CLASS_WRITE, call, &err, tmp);
    if (path == NULL) return io(fd, iov, niov, offset);
    if (err) {
        end();
        errno = err;
        return -1;
    }
    off_t at = positional ? offset : write_offset(fd);
    ssize_t wrote = io(fd, iov, niov, offset);
    int saved = errno;
    if (wrote > 0) journal_locked(OP_WRITE, path, at, iov, niov, wrote);
    end();
    errno = saved;
    return wrote;
}

static ssize_t io_write(int fd, const struct iovec *iov, int niov, off_t offset) {
    (void)niov;
    (void)offset;
    return real_write(fd, iov[0].iov_base, iov[0].iov_len);
}
static ssize_t io_pwrite(int fd, const struct iovec *iov, int niov, off_t offset) {
    (void)niov;
    return real_pwrite(fd, iov[0].iov_base, iov[0].iov_len, offset);
}
static ssize_t io_pwrite64(int fd, const struct iovec *iov, int niov, off_t offset) {
    (void)niov;
    return real_pwrite64(fd, iov[0].iov_base, iov[0].iov_len, offset);
}
static ssize_t io_writev(int fd, const struct iovec *iov, int niov, off_t offset) {
    (void)offset;
    return real_writev(fd, iov, niov);
}
static ssize_t io_pwritev(int fd, const struct iovec *iov, int niov, off_t offset) {
    return real_pwritev(fd, iov, niov, offset);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!real_write) resolve_all();
    struct iovec iov = {(void *)buf, count};
    return do_write(fd, &iov, 1, 0, 0, "write", io_write);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_write) resolve_all();
    struct iovec iov = {(void *)buf, count};
    return do_write(fd, &iov, 1, offset, 1, "pwrite", io_pwrite);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_write) resolve_all();
    struct iovec iov = {(void *)buf, count};
    return do_write(fd, &iov, 1, offset, 1, "pwrite64", io_pwrite64);
}

ssize_t writev(int fd, const struct iovec *iov, int niov) {
    if (!real_write) resolve_all();
    return do_write(fd, iov, niov, 0, 0, "writev", io_writev);
}

ssize_t pwritev(int fd, const struct iovec *iov, int niov, off_t offset) {
    if (!real_write) resolve_all();
    return do_write(fd, iov, niov, offset, 1, "pwritev", io_pwritev);
}

static int do_sync(int fd, const char *call, int (*real)(int)) {
    char tmp[PATH_MAX];
    int err;
    const char *path = begin(fd, CLASS_FSYNC, call, &err, tmp);
    if (path == NULL) return real(fd);
    if (err) {
        end();
        errno = err;
        return -1;
    }
    int rc = real(fd);
    int saved = errno;
    if (rc == 0) journal_locked(OP_SYNC, path, 0, NULL, 0, 0);
    end();
    errno = saved;
    return rc;
}

int fsync(int fd) {
    if (!real_write) resolve_all();
    return do_sync(fd, "fsync", real_fsync);
}

int fdatasync(int fd) {
    if (!real_write) resolve_all();
    return do_sync(fd, "fdatasync", real_fdatasync);
}

/* Truncation is journaled (a shrinking WAL matters to the replay) but never faulted. */
static int do_truncate(int fd, off_t length, int (*real)(int, off_t)) {
    if (owner < 0 || inside || getpid() != owner) return real(fd, length);
    char tmp[PATH_MAX];
    inside = 1;
    pthread_mutex_lock(&lock);
    const char *path = affected(fd, tmp);
    if (path != NULL && path != tmp) snprintf(tmp, sizeof tmp, "%s", path);
    pthread_mutex_unlock(&lock);
    int rc = real(fd, length);
    int saved = errno;
    if (rc == 0 && path != NULL) journal_locked(OP_TRUNCATE, tmp, length, NULL, 0, 0);
    inside = 0;
    errno = saved;
    return rc;
}

int ftruncate(int fd, off_t length) {
    if (!real_write) resolve_all();
    return do_truncate(fd, length, real_ftruncate);
}

int ftruncate64(int fd, off_t length) {
    if (!real_write) resolve_all();
    return do_truncate(fd, length, real_ftruncate64);
}

/* The fd table is only a cache of paths: forget an fd whenever it may name another file. */
static void forget_locked(int fd) {
    if (owner < 0 || inside || getpid() != owner) return;
    inside = 1;
    pthread_mutex_lock(&lock);
    forget(fd);
    pthread_mutex_unlock(&lock);
    inside = 0;
}

int close(int fd) {
    if (!real_write) resolve_all();
    forget_locked(fd);
    return real_close(fd);
}

int dup2(int oldfd, int newfd) {
    if (!real_write) resolve_all();
    forget_locked(newfd);
    return real_dup2(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags) {
    if (!real_write) resolve_all();
    forget_locked(newfd);
    return real_dup3(oldfd, newfd, flags);
}

__attribute__((constructor)) static void faultshim_init(void) {
    resolve_all();
    const char *value = getenv("FAULTSHIM_PATH_PREFIX");
    if (value == NULL || !value[0]) return; /* not configured: a pass-through */
    if (realpath(value, prefix) == NULL) snprintf(prefix, sizeof prefix, "%s", value);
    prefix_len = strlen(prefix);
    while (prefix_len > 1 && prefix[prefix_len - 1] == '/') prefix[--prefix_len] = 0;
    if ((value = getenv("FAULTSHIM_CONTROL"))) snprintf(control, sizeof control, "%s", value);
    if ((value = getenv("FAULTSHIM_REPORT"))) snprintf(report, sizeof report, "%s", value);
    if ((value = getenv("FAULTSHIM_JOURNAL")) && value[0])
        journal_fd = open(value, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    parse_rules(getenv("FAULTSHIM_FAIL"));
    owner = getpid();
    unsetenv("LD_PRELOAD"); /* what this process executes runs without the shim */
}
