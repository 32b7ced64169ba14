#ifndef VIGIL_IOPRIO_H
#define VIGIL_IOPRIO_H

#include <errno.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

/// A thread's I/O priority (Linux's ioprio_set and ioprio_get). The C library
/// has no functions for them and `syscall` takes variable arguments, which
/// Swift cannot pass: these two static inline functions make the calls.
/// Classes: 0 none set (the thread's CPU niceness decides), 1 real time,
/// 2 best effort, 3 idle.

// From linux/ioprio.h: a thread names itself as "process" 0; the class sits above 13 bits of level.
enum { VIGIL_IOPRIO_WHO_PROCESS = 1, VIGIL_IOPRIO_CLASS_SHIFT = 13, VIGIL_IOPRIO_CLASS_IDLE = 3 };

/// The calling thread's I/O priority class, or -1 with errno set.
static inline int vigil_ioprio_class(void) {
#ifdef __linux__
    long value = syscall(SYS_ioprio_get, VIGIL_IOPRIO_WHO_PROCESS, 0);
    return value < 0 ? -1 : (int)(value >> VIGIL_IOPRIO_CLASS_SHIFT);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/// Puts the calling thread's disk reads in the idle class: the disk's
/// scheduler serves them when no other class has requests waiting (buffered
/// writes reach the disk through the kernel's flusher threads, in their
/// class). 0, or -1 with errno set.
static inline int vigil_ioprio_set_idle(void) {
#ifdef __linux__
    return (int)syscall(SYS_ioprio_set, VIGIL_IOPRIO_WHO_PROCESS, 0, VIGIL_IOPRIO_CLASS_IDLE << VIGIL_IOPRIO_CLASS_SHIFT);
#else
    errno = ENOSYS;
    return -1;
#endif
}

#endif
