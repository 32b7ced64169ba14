// A power cut for one directory, for vigil's durability test (never part of
// vigil itself). Preloaded into the daemon under test (LD_PRELOAD), it passes
// every write through to the real file, as the page cache would, and keeps a
// second copy of each file that holds only what was synced: a write reaches
// the copy when fsync/fdatasync is called on its file. After a SIGKILL, the
// test puts the synced copies in place of the files — every write not yet
// synced is lost, as in a power cut — and starts the daemon again.
//
//   VIGIL_POWERCUT_DIR     the directory whose files are watched (the state directory)
//   VIGIL_POWERCUT_SHADOW  where the synced copies live
//
// The shared-memory index (*-shm) is not watched: SQLite rebuilds it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

struct op {
    off_t offset;
    size_t length;   // a truncation when data is NULL
    char *data;
    struct op *next;
};

struct file {
    char name[256];
    struct op *head, *tail;
    struct file *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct file *files;
static char *fd_names[65536];

static const char *watch_dir(void) { return getenv("VIGIL_POWERCUT_DIR"); }
static const char *shadow_dir(void) { return getenv("VIGIL_POWERCUT_SHADOW"); }

static void *next_symbol(const char *name) { return dlsym(RTLD_NEXT, name); }

// The base name of `path` when it lies in the watched directory (and is not an -shm file).
static const char *watched(const char *path) {
    const char *dir = watch_dir();
    if (!dir || !path) return NULL;
    size_t n = strlen(dir);
    if (strncmp(path, dir, n) != 0 || path[n] != '/') return NULL;
    const char *base = path + n + 1;
    if (strchr(base, '/')) return NULL;
    size_t b = strlen(base);
    if (b >= 4 && strcmp(base + b - 4, "-shm") == 0) return NULL;
    return base;
}

static struct file *file_named(const char *name) {
    for (struct file *f = files; f; f = f->next) if (strcmp(f->name, name) == 0) return f;
    struct file *f = calloc(1, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->next = files;
    files = f;
    return f;
}

static void shadow_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", shadow_dir(), name); }

static void track_open(int fd, const char *path) {
    const char *base = watched(path);
    if (fd < 0 || fd >= 65536 || !base) return;
    pthread_mutex_lock(&lock);
    free(fd_names[fd]);
    fd_names[fd] = strdup(base);
    file_named(base);
    char sp[4096];
    shadow_path(sp, sizeof sp, base);
    static int (*real_open)(const char *, int, ...);
    if (!real_open) real_open = next_symbol("open");
    int s = real_open(sp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);  // a created file counts as durable
    if (s >= 0) close(s);
    pthread_mutex_unlock(&lock);
}

static void record(int fd, off_t offset, const void *data, size_t length, int truncation) {
    if (fd < 0 || fd >= 65536) return;
    pthread_mutex_lock(&lock);
    if (fd_names[fd]) {
        struct file *f = file_named(fd_names[fd]);
        struct op *o = calloc(1, sizeof *o);
        o->offset = offset;
        o->length = length;
        if (!truncation) { o->data = malloc(length); memcpy(o->data, data, length); }
        if (f->tail) f->tail->next = o; else f->head = o;
        f->tail = o;
    }
    pthread_mutex_unlock(&lock);
}

// fsync: what was written to this file so far reaches its synced copy.
static void make_durable(int fd) {
    if (fd < 0 || fd >= 65536) return;
    pthread_mutex_lock(&lock);
    if (fd_names[fd]) {
        struct file *f = file_named(fd_names[fd]);
        char sp[4096];
        shadow_path(sp, sizeof sp, f->name);
        static int (*real_open)(const char *, int, ...);
        if (!real_open) real_open = next_symbol("open");
        static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
        if (!real_pwrite) real_pwrite = next_symbol("pwrite64");
        static int (*real_ftruncate)(int, off_t);
        if (!real_ftruncate) real_ftruncate = next_symbol("ftruncate64");
        int s = real_open(sp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        for (struct op *o = f->head, *next; o; o = next) {
            next = o->next;
            if (s >= 0) {
                // The real calls: this runs under `lock`, which the wrappers take.
                if (o->data) real_pwrite(s, o->data, o->length, o->offset); else if (real_ftruncate(s, o->offset) != 0) {}
            }
            free(o->data);
            free(o);
        }
        f->head = f->tail = NULL;
        if (s >= 0) close(s);
    }
    pthread_mutex_unlock(&lock);
}

int open(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = next_symbol("open");
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real(path, flags, mode);
    track_open(fd, path);
    return fd;
}

int open64(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = next_symbol("open64");
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real(path, flags, mode);
    track_open(fd, path);
    return fd;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = next_symbol("pwrite64");
    ssize_t w = real(fd, buf, n, offset);
    if (w > 0) record(fd, offset, buf, (size_t)w, 0);
    return w;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) { return pwrite64(fd, buf, n, offset); }

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = next_symbol("write");
    int tracked = fd >= 0 && fd < 65536 && fd_names[fd];
    off_t at = tracked ? lseek(fd, 0, SEEK_CUR) : 0;
    ssize_t w = real(fd, buf, n);
    if (tracked && w > 0) record(fd, at, buf, (size_t)w, 0);
    return w;
}

int ftruncate64(int fd, off_t length) {
    static int (*real)(int, off_t);
    if (!real) real = next_symbol("ftruncate64");
    int r = real(fd, length);
    if (r == 0) record(fd, length, NULL, 0, 1);
    return r;
}

int ftruncate(int fd, off_t length) { return ftruncate64(fd, length); }

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = next_symbol("fsync");
    make_durable(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = next_symbol("fdatasync");
    make_durable(fd);
    return real(fd);
}

int close(int fd) {
    static int (*real)(int);
    if (!real) real = next_symbol("close");
    if (fd >= 0 && fd < 65536 && fd_names[fd]) {
        pthread_mutex_lock(&lock);
        free(fd_names[fd]);
        fd_names[fd] = NULL;   // unsynced writes stay pending for the file: closing does not sync
        pthread_mutex_unlock(&lock);
    }
    return real(fd);
}

int unlink(const char *path) {
    static int (*real)(const char *);
    if (!real) real = next_symbol("unlink");
    const char *base = watched(path);
    int r = real(path);
    if (r == 0 && base) {
        pthread_mutex_lock(&lock);
        struct file *f = file_named(base);
        for (struct op *o = f->head, *next; o; o = next) { next = o->next; free(o->data); free(o); }
        f->head = f->tail = NULL;
        char sp[4096];
        shadow_path(sp, sizeof sp, base);
        static int (*real_unlink)(const char *);
        if (!real_unlink) real_unlink = next_symbol("unlink");
        real_unlink(sp);
        pthread_mutex_unlock(&lock);
    }
    return r;
}
