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
        try forEachBatch(maxLines: 1) { lines, number in try body(lines[0], number) }
    }

    /// The lines in batches of up to `maxLines`, in order, with the number
    /// of the batch's first line: a caller can look at the next few lines
    /// before it takes them one by one. A batch and its lines are valid only
    /// during the callback. Returns false if reading failed.
    @discardableResult
    public func forEachBatch(
        maxLines: Int, _ body: (UnsafeBufferPointer<UnsafeBufferPointer<UInt8>>, Int) throws -> Void
    ) rethrows -> Bool {
        precondition(maxLines >= 1, "a batch holds at least one line")
        let blockSize = 1 << 20
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var carry: [UInt8] = []
        var lineNumber = 0
        return try withUnsafeTemporaryAllocation(of: UnsafeBufferPointer<UInt8>.self, capacity: maxLines) { batch in
            var count = 0  // lines in `batch`, the last of them numbered `lineNumber`
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
                            batch[count] = UnsafeBufferPointer(rebasing: buf[start..<i])
                            count += 1
                            if count == maxLines {
                                try body(UnsafeBufferPointer(rebasing: batch[..<count]), lineNumber - count + 1)
                                count = 0
                            }
                        } else {
                            // A line begun in the block before (the batch is empty): on its own, from its own buffer.
                            carry.append(contentsOf: buf[start..<i])
                            try carry.withUnsafeBufferPointer { try Self.alone($0, lineNumber, batch, body) }
                            carry.removeAll(keepingCapacity: true)
                        }
                        start = i + 1
                    }
                    if count > 0 {  // the block is read again next
                        try body(UnsafeBufferPointer(rebasing: batch[..<count]), lineNumber - count + 1)
                        count = 0
                    }
                    if start < n { carry.append(contentsOf: buf[start..<n]) }
                }
            }
            if !carry.isEmpty {
                lineNumber += 1
                try carry.withUnsafeBufferPointer { try Self.alone($0, lineNumber, batch, body) }
            }
            return true
        }
    }

    /// A line handed as a batch of its own (in `batch`'s first place).
    private static func alone(
        _ line: UnsafeBufferPointer<UInt8>, _ number: Int, _ batch: UnsafeMutableBufferPointer<UnsafeBufferPointer<UInt8>>,
        _ body: (UnsafeBufferPointer<UnsafeBufferPointer<UInt8>>, Int) throws -> Void
    ) rethrows {
        batch[0] = line
        try body(UnsafeBufferPointer(rebasing: batch[..<1]), number)
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
