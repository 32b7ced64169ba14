/// A state file that vigil must not use: damaged, another application's, or
/// written by a newer vigil. vigil never replaces or repairs such a file; the
/// message names it and says what the operator can do.
public struct StateFileError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Database {
    /// `PRAGMA application_id` of vigil's state databases: "VGIL".
    public static let vigilApplicationID: Int64 = 0x5647_494C

    /// Makes sure this (freshly opened, unchanged) file is vigil's state
    /// database at a schema this build knows, or a new empty one. Returns the
    /// schema version found (0: a new file). A file from before vigil stamped
    /// its files is recognised by its tables, all of them vigil's.
    public func claimState(knownTables: Set<String>, newest: Int64) throws(StateFileError) -> Int64 {
        let applicationID: Int64, version: Int64
        var tables: [String] = []
        do {
            applicationID = try prepare("PRAGMA application_id").scalarInt() ?? 0
            version = try prepare("PRAGMA user_version").scalarInt() ?? 0
            try prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").query([]) {
                tables.append($0.text(0))
            }
        } catch {
            throw StateFileError(
                "\(path) is not a usable vigil state database (\((error as? SQLiteError)?.message ?? "\(error)")). "
                    + "vigil leaves it untouched: move it aside (or restore it from a backup) and start vigil again to begin with an empty state")
        }
        if tables.isEmpty && applicationID == 0 { return 0 }
        if applicationID == Database.vigilApplicationID || (applicationID == 0 && Set(tables).isSubset(of: knownTables)) {
            if version > newest {
                throw StateFileError(
                    "\(path) was written by a newer vigil (state schema \(version); this vigil knows up to \(newest)). "
                        + "vigil leaves it untouched: run the newer vigil, or move the file aside to start with an empty state")
            }
            return version
        }
        throw StateFileError(
            "\(path) is not vigil's: it belongs to another application (application_id \(applicationID), tables \(tables.prefix(5).joined(separator: ", "))). "
                + "vigil leaves it untouched: point state_dir at a folder of vigil's own")
    }

    /// Marks the file as vigil's state database at schema `version`.
    public func stampState(version: Int64) throws {
        // Only when it changes: a start on a full disk must not need a write.
        let id = try prepare("PRAGMA application_id").scalarInt() ?? 0
        let v = try prepare("PRAGMA user_version").scalarInt() ?? 0
        if id != Database.vigilApplicationID { try execute("PRAGMA application_id=\(Database.vigilApplicationID)") }
        if v != version { try execute("PRAGMA user_version=\(version)") }
    }
}
