#ifndef VIGIL_PREFETCH_H
#define VIGIL_PREFETCH_H

/// A hint that a load from `address` is coming: the processor starts fetching
/// its cache line now and goes on; the load itself then finds it there. It
/// never faults, whatever the address. Swift has no such instruction of its own.
static inline void vigil_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
