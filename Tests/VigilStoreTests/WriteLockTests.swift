import Foundation
import Synchronization
import Testing
@testable import VigilStore
import VigilTestSupport

/// Two connections to one file wait for each other's write lock as the
/// daemon's do (ingestion and each sink's queue connection).
@Suite struct WriteLockTests {
    /// A writer that finds the lock taken gets it soon after it is freed, not
    /// at the next step of a growing back-off: SQLite's own timeout handler
    /// would try again 88 ms after a lock held for 240 ms was released.
    @Test func aWaitingWriterTakesTheLockSoonAfterItIsFreed() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let setup = try Database(path: path, sync: .normal)
        try setup.execute("CREATE TABLE t(x INTEGER)")

        let locked = DispatchSemaphore(value: 0)
        let released = Mutex<ContinuousClock.Instant?>(nil)
        let holder = Thread {
            do {
                let db = try Database(path: path, sync: .normal)
                try db.execute("BEGIN IMMEDIATE")
                try db.execute("INSERT INTO t VALUES(1)")
                locked.signal()
                Thread.sleep(forTimeInterval: 0.24)
                try db.execute("COMMIT")
                released.withLock { $0 = ContinuousClock.now }
            } catch {
                locked.signal()
            }
        }
        holder.start()
        locked.wait()

        let waiter = try Database(path: path, sync: .normal)
        let asked = ContinuousClock.now
        try waiter.transaction { try waiter.execute("INSERT INTO t VALUES(2)") }
        let got = ContinuousClock.now
        let freed = try #require(released.withLock { $0 })
        #expect(asked.duration(to: got) >= .milliseconds(200), "the lock was held: the writer had to wait")
        #expect(freed.duration(to: got) < .milliseconds(50), "taken \(freed.duration(to: got)) after it was freed")
        #expect(try waiter.prepare("SELECT count(*) FROM t").scalarInt() == 2)
    }

    /// A lock that is never freed ends in a busy error after the handler's
    /// tries (5 s), not in a wait without end.
    @Test func aLockNeverFreedEndsInABusyError() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let holder = try Database(path: path, sync: .normal)
        try holder.execute("CREATE TABLE t(x INTEGER)")
        try holder.execute("BEGIN IMMEDIATE")
        defer { try? holder.execute("ROLLBACK") }
        let waiter = try Database(path: path, sync: .normal)
        let asked = ContinuousClock.now
        #expect {
            try waiter.execute("BEGIN IMMEDIATE")
        } throws: { error in
            (error as? SQLiteError)?.isBusy == true
        }
        let waited = asked.duration(to: ContinuousClock.now)
        #expect(waited >= .seconds(4) && waited < .seconds(30), "gave up after \(waited)")
    }

    /// While a reader keeps the WAL from starting over, a connection's
    /// commits checkpoint once per 1,000 new frames, not after each commit
    /// (SQLite's own hook would run about 2,000 checkpoints here); once the
    /// reader is gone, a checkpoint copies everything and the WAL starts over.
    @Test func aReaderHoldingTheWALDoesNotMakeEveryCommitCheckpoint() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let writer = try Database(path: path, sync: .normal)
        try writer.execute("CREATE TABLE t(x BLOB)")
        let reader = try Database(path: path, readOnly: true)
        try reader.execute("BEGIN")
        #expect(try reader.prepare("SELECT count(*) FROM t").scalarInt() == 0)
        let insert = try writer.prepare("INSERT INTO t VALUES(zeroblob(100))")
        for _ in 0..<3000 { try insert.run() }
        #expect(writer.pacer.frames >= 3000, "every commit added a frame the reader kept")
        #expect(writer.pacer.checkpoints >= 2 && writer.pacer.checkpoints <= 3, "\(writer.pacer.checkpoints) checkpoints")
        try reader.execute("COMMIT")
        var started = false
        for _ in 0..<3000 where !started {
            try insert.run()
            started = writer.pacer.frames < 10
        }
        #expect(started, "the WAL started over (\(writer.pacer.frames) frames)")
        #expect(try writer.prepare("SELECT count(*) FROM t").scalarInt() ?? 0 > 3000)
    }
}
