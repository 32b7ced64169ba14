import Foundation
import Testing
import VigilStore

/// The committing connection never checkpoints; the checkpointer, beside it, does.
@Suite struct WALCheckpointerTests {
    @Test func commitsLeaveTheWALToTheCheckpointer() throws {
        let dir = NSTemporaryDirectory() + "vigil-ckpt-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let writer = try Database(path: path, sync: .full)
        try writer.disableAutoCheckpoint()
        try writer.execute("CREATE TABLE t(x BLOB)")
        let insert = try writer.prepare("INSERT INTO t(x) VALUES(?)")
        // 3,000 pages, far past SQLite's own automatic checkpoint at 1,000: nothing is copied.
        for _ in 0..<300 {
            try writer.transaction { for _ in 0..<10 { try insert.run(.blob([UInt8](repeating: 7, count: 4000))) } }
        }
        let reader = try Database(path: path, readOnly: true)
        var count: Int64 = 0
        try reader.prepare("SELECT count(*) FROM t").query([]) { count = $0.int(0) }
        #expect(count == 3000)
        let wal = { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0 }
        let before = wal()
        #expect(before > 3000 * 4096)

        let checkpointer = try WALCheckpointer(path: path, sync: .full)
        let errors = ErrorBox()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            checkpointer.run(interval: 0.1) { errors.add($0) }
            done.signal()
        }
        thread.start()
        Thread.sleep(forTimeInterval: 0.5)
        checkpointer.stop()
        #expect(done.wait(timeout: .now() + 5) == .success, "stop() ends run()")
        #expect(errors.all.isEmpty, "\(errors.all)")
        // Everything is in the database file: the next commit starts the WAL
        // again and cuts it back to journal_size_limit (8 MiB).
        let (frames, copied) = try writer.checkpointPassive()
        #expect(frames == copied)
        try writer.transaction { try insert.run(.blob([1])) }
        #expect(wal() <= 8 * 1024 * 1024 + 65536, "WAL \(before) → \(wal()) bytes")
        #expect(wal() < before)
    }
}

/// Errors seen on the checkpointer's thread.
final class ErrorBox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ e: SQLiteError) { lock.lock(); items.append(e.description); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
