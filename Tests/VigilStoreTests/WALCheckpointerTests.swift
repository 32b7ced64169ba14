import Foundation
import Testing
import VigilStore
import VigilTestSupport

@Suite struct WALCheckpointerTests {
    /// The log's size and how much of it is in the database file, from a
    /// passive checkpoint on a connection of the test's own.
    func logPages(_ path: String) throws -> (log: Int64, copied: Int64) {
        let db = try Database(path: path, sync: nil)
        let row = try db.prepare("PRAGMA wal_checkpoint(PASSIVE)").query()
        return (row.first?.int(1) ?? -1, row.first?.int(2) ?? -1)
    }

    func waitFor(_ seconds: Double, _ done: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while try !done() && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return try done()
    }

    /// A served connection's commits leave the log to the checkpointer: a
    /// reader's snapshot holds it back (the log grows past 1,000 pages, no
    /// commit copies it), and once the reader lets go, the next commit's
    /// request has the checkpointer copy every page.
    @Test func servedCommitsLeaveTheLogToTheCheckpointer() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let db = try Database(path: path, sync: .normal)
        try db.execute("CREATE TABLE t(x BLOB)")
        let checkpointer = try WALCheckpointer(path: path, sync: .normal, spacing: 10)
        checkpointer.serve(db)
        // A reader's snapshot from before the rows.
        let reader = try Database(path: path, readOnly: true)
        try reader.execute("BEGIN")
        #expect(try reader.prepare("SELECT count(*) FROM t").scalarInt() == 0)
        let insert = try db.prepare("INSERT INTO t VALUES(randomblob(3000))")
        for _ in 0..<1500 { try insert.run() }  // a commit each
        #expect(waitFor(5) { checkpointer.stats.logPages >= 1000 })
        let held = checkpointer.stats
        #expect(held.runs > 0 && held.copiedPages < held.logPages)  // nothing past the snapshot
        try reader.execute("COMMIT")
        try insert.run()  // the next commit asks again
        #expect(
            waitFor(5) {
                let s = checkpointer.stats; return s.logPages >= 1500 && s.copiedPages == s.logPages
            })
        #expect(try db.prepare("SELECT count(*) FROM t").scalarInt() == 1501)
    }

    /// Without a checkpointer (SQLite's default), a commit copies the log
    /// back itself: the log never holds much more than 1,000 pages.
    @Test func unservedCommitsCopyTheLogThemselves() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vigil.db"
        let db = try Database(path: path, sync: .normal)
        try db.execute("CREATE TABLE t(x BLOB)")
        let insert = try db.prepare("INSERT INTO t VALUES(randomblob(3000))")
        for _ in 0..<1500 { try insert.run() }
        #expect(try logPages(path).log < 1200)
    }
}
