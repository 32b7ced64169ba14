#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file descriptor line by line in large blocks, handing each line
/// (without its newline) as a buffer pointer valid only during the callback.
public struct LineReader {
    let fd: Int32
    public init(fd: Int32) { self.fd = fd }

    /// Returns false if reading failed.
    @discardableResult
    public func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void) rethrows -> Bool {
        let blockSize = 1 << 20
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var carry: [UInt8] = []
        var lineNumber = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, blockSize) }
            if n < 0 { if errno == EINTR { continue }; return false }
            if n == 0 { break }
            try buffer.withUnsafeBufferPointer { buf in
                var start = 0
                // memchr finds the line ends: many bytes a step, where a loop takes one.
                while start < n, let hit = memchr(buf.baseAddress! + start, 0x0A, n - start) {
                    let i = buf.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    lineNumber += 1
                    if carry.isEmpty {
                        try body(UnsafeBufferPointer(rebasing: buf[start..<i]), lineNumber)
                    } else {
                        carry.append(contentsOf: buf[start..<i])
                        try carry.withUnsafeBufferPointer { try body($0, lineNumber) }
                        carry.removeAll(keepingCapacity: true)
                    }
                    start = i + 1
                }
                if start < n { carry.append(contentsOf: buf[start..<n]) }
            }
        }
        if !carry.isEmpty {
            lineNumber += 1
            try carry.withUnsafeBufferPointer { try body($0, lineNumber) }
        }
        return true
    }
}

/// Buffered writes to a file descriptor.
public final class OutputBuffer {
    let fd: Int32
    var buffer: [UInt8] = []
    let limit: Int

    public init(fd: Int32, limit: Int = 1 << 16) {
        self.fd = fd; self.limit = limit
        buffer.reserveCapacity(limit + 4096)
    }

    public func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= limit { flush() }
    }

    public func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= limit { flush() }
    }

    public func flush() {
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; break }
            off += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    deinit { flush() }
}
