import CSocketReadBuffer
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The read buffer under libmosquitto: what this process's `read` does for an
/// attached socket, for other descriptors and for other threads.
@Suite struct ReadBufferTests {
    /// A connected pair of Unix stream sockets; the first is non-blocking, as libmosquitto's is.
    func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
        precondition(rc == 0)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return (fds[0], fds[1])
    }

    func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }

    func receive(_ fd: Int32, _ n: Int) -> (count: Int, text: String) {
        var buf = [UInt8](repeating: 0, count: n)
        let got = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, n) }
        return (got, got > 0 ? String(decoding: buf[..<got], as: UTF8.self) : "")
    }

    @Test func smallReadsOfAnAttachedSocketAreServedInOrderFromOneKernelRead() {
        let (a, b) = pair()
        defer { vigil_read_buffer_detach(); close(a); close(b) }
        vigil_read_buffer_attach(a)
        send(b, "0123456789")
        #expect(receive(a, 1).text == "0")
        // The rest is in the buffer already: the peer's next bytes come after it.
        #expect(vigil_read_buffer_pending() == 9)
        send(b, "abc")
        #expect(receive(a, 2).text == "12")
        #expect(receive(a, 100).text == "3456789")
        #expect(vigil_read_buffer_pending() == 0)
        #expect(receive(a, 100).text == "abc")
        // Empty buffer, empty socket: the kernel's answer, EAGAIN.
        let r = receive(a, 1)
        #expect(r.count == -1 && errno == EAGAIN)
        close(b)
        #expect(receive(a, 1).count == 0, "end of stream reads as 0")
    }

    @Test func otherDescriptorsAndOtherThreadsReadFromTheKernel() throws {
        let (a, b) = pair()
        let (c, d) = pair()
        defer { vigil_read_buffer_detach(); close(a); close(b); close(c); close(d) }
        vigil_read_buffer_attach(a)
        send(b, "first")
        #expect(receive(a, 1).text == "f")
        send(d, "other")
        #expect(receive(c, 2).text == "ot")
        #expect(vigil_read_buffer_pending() == 4, "reading another descriptor leaves the buffer alone")
        // Another thread reading the attached descriptor gets the kernel's bytes, never the buffer's.
        send(b, "more")
        let seen = ThreadResult()
        let t = Thread { seen.set(self.receive(a, 100).text) }
        t.start()
        #expect(seen.wait() == "more")
        #expect(receive(a, 100).text == "irst")
    }

    @Test func detachingDropsWhatTheBufferHeld() {
        let (a, b) = pair()
        defer { vigil_read_buffer_detach(); close(a); close(b) }
        vigil_read_buffer_attach(a)
        send(b, "old connection")
        #expect(receive(a, 3).text == "old")
        vigil_read_buffer_detach()
        #expect(vigil_read_buffer_pending() == 0 && vigil_read_buffer_fd() == -1)
        // A new connection on the same descriptor number starts empty.
        vigil_read_buffer_attach(a)
        send(b, "new")
        #expect(receive(a, 100).text == "new")
    }
}

/// A string handed from one thread to another.
final class ThreadResult: @unchecked Sendable {
    // @unchecked: every access holds the condition's lock.
    private let condition = NSCondition()
    private var value: String?

    func set(_ v: String) { condition.lock(); value = v; condition.signal(); condition.unlock() }

    func wait() -> String? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(5)
        while value == nil && condition.wait(until: deadline) {}
        return value
    }
}
