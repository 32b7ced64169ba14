// A read buffer for one socket of one thread.
//
// Why this exists: libmosquitto 2.0 reads a packet with one read() for the
// command byte, one per byte of the remaining length and one for the rest,
// so a 160-byte PUBLISH costs four system calls. At tens of thousands of
// messages a second those calls are a quarter of the daemon's time. Within
// this process `read` is defined here: a thread that attached a socket gets
// that socket's reads served from a 64 KiB buffer filled by one read() each
// time it runs dry; every other read, and every read on any other thread,
// goes straight to the kernel.
#ifndef VIGIL_SOCKET_READ_BUFFER_H
#define VIGIL_SOCKET_READ_BUFFER_H

#include <stddef.h>

/// From now on, this thread's reads of `fd` go through the buffer (emptied).
void vigil_read_buffer_attach(int fd);
/// This thread's reads go straight to the kernel again; buffered bytes are dropped.
void vigil_read_buffer_detach(void);
/// Bytes read from the socket that this thread has not consumed yet.
size_t vigil_read_buffer_pending(void);
/// The socket attached on this thread, or -1.
int vigil_read_buffer_fd(void);

#endif
