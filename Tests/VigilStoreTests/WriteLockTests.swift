import Foundation
import Synchronization
import Testing
@testable import VigilStore
import VigilTestSupport

/// Two connections to one file wait for each other's write lock as the
/// daemon's do (ingestion and each sink's queue connection).
@Suite final class WriteLockTests {
    /// Each test's own folder, removed when the test is done.
    let dir: String
    var path: String { dir + "/vigil.db" }

    init() throws { dir = try makeWorkDir() }
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// A writer on a new table `t(x BLOB)` of 4 KiB pages, and a reader in the
    /// middle of a transaction begun before any row: it holds the WAL.
    func writerAndAReaderHoldingTheWAL() throws -> (writer: Database, reader: Database) {
        let writer = try Database(path: path, sync: .normal)
        try writer.execute("PRAGMA page_size=4096")
        try writer.execute("CREATE TABLE t(x BLOB)")
        let reader = try Database(path: path, readOnly: true)
        try reader.execute("BEGIN")
        #expect(try reader.prepare("SELECT count(*) FROM t").scalarInt() == 0)
        return (writer, reader)
    }

    /// Runs `insert` until the writer's WAL starts over (at most 3,000 times); whether it did.
    func insertUntilTheWALStartsOver(_ insert: Statement, _ writer: Database) throws -> Bool {
        for _ in 0..<3000 {
            try insert.run()
            if writer.pacer.frames < 10 { return true }
        }
        return false
    }

    /// A writer that finds the lock taken gets it soon after it is freed, not
    /// at the next step of a growing back-off: SQLite's own timeout handler
    /// would try again 88 ms after a lock held for 240 ms was released.
    @Test func aWaitingWriterTakesTheLockSoonAfterItIsFreed() throws {
        let path = self.path
        let setup = try Database(path: path, sync: .normal)
        try setup.execute("CREATE TABLE t(x INTEGER)")
        let waiter = try Database(path: path, sync: .normal)

        let locked = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        // When the holder took the lock, and when it began to give it back (just before COMMIT).
        let times = Mutex<(took: ContinuousClock.Instant?, releasing: ContinuousClock.Instant?)>((nil, nil))
        let holder = Thread {
            defer { done.signal() }
            do {
                let db = try Database(path: path, sync: .normal)
                try db.execute("BEGIN IMMEDIATE")
                try db.execute("INSERT INTO t VALUES(1)")
                times.withLock { $0.took = ContinuousClock.now }
                locked.signal()
                Thread.sleep(forTimeInterval: 0.24)
                times.withLock { $0.releasing = ContinuousClock.now }
                try db.execute("COMMIT")
            } catch {
                locked.signal()
            }
        }
        holder.start()
        locked.wait()
        try waiter.transaction { try waiter.execute("INSERT INTO t VALUES(2)") }
        let got = ContinuousClock.now
        done.wait()
        let (took, releasing) = times.withLock { $0 }
        let heldFrom = try #require(took), freedFrom = try #require(releasing)
        #expect(freedFrom < got, "the writer had to wait for the lock")
        #expect(heldFrom.duration(to: got) >= .milliseconds(200))
        // SQLite's own handler would have tried again about 88 ms after the release began.
        #expect(freedFrom.duration(to: got) < .milliseconds(50), "taken \(freedFrom.duration(to: got)) after its release began")
        #expect(try waiter.prepare("SELECT count(*) FROM t").scalarInt() == 2)
    }

    /// The handler's steps: 20 tries of 0.1 ms, then 1 ms each, then it gives up.
    @Test func theBusyHandlerTriesInShortStepsThenGivesUp() {
        #expect(Database.busyHandler(nil, 0) == 1)
        #expect(Database.busyHandler(nil, Database.busyTries - 1) == 1)
        #expect(Database.busyHandler(nil, Database.busyTries) == 0)
    }

    /// A lock that is never freed ends in a busy error after the handler's
    /// tries (5 s), not in a wait without end.
    @Test func aLockNeverFreedEndsInABusyError() throws {
        let path = self.path
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
        let (writer, reader) = try writerAndAReaderHoldingTheWAL()
        let insert = try writer.prepare("INSERT INTO t VALUES(zeroblob(100))")
        for _ in 0..<3000 { try insert.run() }
        #expect(writer.pacer.frames >= 3000, "every commit added a frame the reader kept")
        // Tried at 1,000 frames, then every 1,000 (SQLite's own hook: after each of some 2,000 commits).
        #expect((2...10).contains(writer.pacer.checkpoints), "\(writer.pacer.checkpoints) checkpoints")
        try reader.execute("COMMIT")
        #expect(try insertUntilTheWALStartsOver(insert, writer), "the WAL started over (\(writer.pacer.frames) frames)")
        #expect(try writer.prepare("SELECT count(*) FROM t").scalarInt() ?? 0 > 3000)
    }

    /// A WAL that a reader made grow is written over when it starts again, not
    /// cut back: a cut frees blocks the next commits allocate again (and, on a
    /// file system mounted with `discard`, waits for the disk's TRIM inside the
    /// commit). A limit below this WAL's size would cut it back to that limit.
    @Test func aWALThatGrewIsWrittenOverNotCutBack() throws {
        let path = self.path
        let (writer, reader) = try writerAndAReaderHoldingTheWAL()
        let insert = try writer.prepare("INSERT INTO t VALUES(zeroblob(3000))")
        for _ in 0..<2000 { try insert.run() }
        func walSize() throws -> Int { (try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0 }
        let grown = try walSize()
        #expect(grown > 12 << 20, "the reader kept the WAL from starting over (\(grown) bytes)")
        #expect(grown < Database.walSizeLimit)
        try reader.execute("COMMIT")
        #expect(try insertUntilTheWALStartsOver(insert, writer), "the WAL started over (\(writer.pacer.frames) frames)")
        let after = try walSize()
        #expect(after >= grown, "the WAL kept its size (\(after) of \(grown) bytes)")
    }
}
