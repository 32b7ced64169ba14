#define _GNU_SOURCE
#include "CSocketReadBuffer.h"
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUFFER_SIZE 65536

// Per thread, so that no other thread can ever see these bytes, even if it
// reads a file that reuses the descriptor number after the socket closed.
static __thread int attached = -1;
static __thread size_t head, tail;
// Allocated by the first attach: thread-local storage is set up for every
// thread, and only the ingest thread needs the buffer.
static __thread unsigned char *buffer;

void vigil_read_buffer_attach(int fd) {
    if (buffer == NULL) buffer = malloc(BUFFER_SIZE);
    attached = buffer == NULL ? -1 : fd;
    head = tail = 0;
}
void vigil_read_buffer_detach(void) { attached = -1; head = tail = 0; }
size_t vigil_read_buffer_pending(void) { return tail - head; }
int vigil_read_buffer_fd(void) { return attached; }

static ssize_t kernel_read(int fd, void *dst, size_t n) {
    return (ssize_t)syscall(SYS_read, fd, dst, n);
}

ssize_t read(int fd, void *dst, size_t n) {
    if (fd != attached || fd < 0) return kernel_read(fd, dst, n);
    if (head == tail) {
        // Large reads need no buffer; an empty buffer refills with one call.
        if (n >= BUFFER_SIZE) return kernel_read(fd, dst, n);
        ssize_t got = kernel_read(fd, buffer, BUFFER_SIZE);
        if (got <= 0) return got;
        head = 0;
        tail = (size_t)got;
    }
    size_t k = tail - head < n ? tail - head : n;
    memcpy(dst, buffer + head, k);
    head += k;
    return (ssize_t)k;
}
