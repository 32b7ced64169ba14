import Foundation
import Testing
import VigilStore
import VigilTestSupport

@Suite struct WALCheckpointerTests {
    /// The log's size in frames and how many of them are in the database
    /// file, from a passive checkpoint of a connection of the test's own.
    func logFrames(_ path: String) throws -> (log: Int64, copied: Int64) {
        let db = try Database(path: path, sync: nil)
        let row = try db.prepare("PRAGMA wal_checkpoint(PASSIVE)").query()
        return (row.first?.int(1) ?? -1, row.first?.int(2) ?? -1)
    }

    /// With automatic checkpoints off, commits leave the log to grow; a
    /// reader's snapshot holds the checkpointer back, and once it lets go the
    /// checkpointer copies every frame — on its own thread, no commit did.
    @Test func theCheckpointerCopiesTheLogOnceReadersLetGo() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let db = try Database(path: path, sync: .normal)
        try db.execute("CREATE TABLE t(x BLOB)")
        try db.setAutomaticCheckpoints(false)
        // A reader's snapshot from before the rows.
        let reader = try Database(path: path, readOnly: true)
        try reader.execute("BEGIN")
        #expect(try reader.prepare("SELECT count(*) FROM t").scalarInt() == 0)
        let insert = try db.prepare("INSERT INTO t VALUES(randomblob(3000))")
        for _ in 0..<1500 { try insert.run() }  // a commit each: past the 1,000 pages SQLite would copy at
        let checkpointer = try WALCheckpointer(path: path, sync: .normal, interval: 20)
        Thread.sleep(forTimeInterval: 0.3)
        let held = checkpointer.stats
        #expect(held.runs > 0)
        #expect(held.logFrames >= 1500 && held.copiedFrames < held.logFrames)  // nothing past the snapshot
        try reader.execute("COMMIT")
        let deadline = Date().addingTimeInterval(10)
        func caughtUp() -> Bool { let s = checkpointer.stats; return s.logFrames >= held.logFrames && s.copiedFrames == s.logFrames }
        while !caughtUp() && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(caughtUp())
        #expect(try db.prepare("SELECT count(*) FROM t").scalarInt() == 1500)
    }

    /// Automatic checkpoints on (SQLite's default), a commit copies the log
    /// back itself: the log never holds much more than 1,000 pages.
    @Test func automaticCheckpointsStayTheDefault() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let db = try Database(path: path, sync: .normal)
        try db.execute("CREATE TABLE t(x BLOB)")
        let insert = try db.prepare("INSERT INTO t VALUES(randomblob(3000))")
        for _ in 0..<1500 { try insert.run() }
        let frames = try logFrames(path)
        #expect(frames.log < 1200)
    }
}
