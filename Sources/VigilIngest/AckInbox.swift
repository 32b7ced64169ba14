import Synchronization
import VigilConfig
import VigilCore
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// Acknowledgements from the HTTP API to the ingest loop, which owns the
/// engine: the API submits and waits; the loop takes them between batches,
/// journals each as an input and answers. An eventfd wakes the loop at once.
public final class AckInbox: Sendable {
    public enum Answer: Sendable, Equatable {
        /// `incident.acknowledged` was emitted (and committed).
        case acknowledged
        /// It was already acknowledged: nothing changes.
        case already
        /// No open incident has this id (resolved meanwhile, or unknown).
        case notOpen
        /// The daemon is stopping, or cannot commit now.
        case unavailable(String)
    }

    struct Pending {
        var ack: Acknowledgement
        var answer: CheckedContinuation<Answer, Never>
    }

    private let pending = Mutex<[Pending]>([])
    /// Readable while acknowledgements wait (the read end of a pipe the loop polls).
    public let wakeFD: Int32
    private let ringFD: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = fds[0]
        ringFD = fds[1]
    }

    deinit { close(wakeFD); close(ringFD) }

    /// Hands an acknowledgement to the loop and waits for its answer.
    public func submit(_ ack: Acknowledgement) async -> Answer {
        await withCheckedContinuation { c in
            pending.withLock { $0.append(Pending(ack: ack, answer: c)) }
            var one: UInt8 = 1
            _ = write(ringFD, &one, 1)
        }
    }

    /// The loop: everything submitted so far.
    func take() -> [Pending] {
        var drained = [UInt8](repeating: 0, count: 64)
        while read(wakeFD, &drained, drained.count) > 0 {}
        return pending.withLock { p in
            defer { p.removeAll() }; return p
        }
    }

    var isEmpty: Bool { pending.withLock { $0.isEmpty } }
}
