import ArgumentParser
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilMQTT
import VigilRules
import VigilStore

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of vigil, libmosquitto and SQLite.")

    func run() async throws {
        print("vigil \(VigilVersion.current)")
        print("libmosquitto \(MosquittoClient.libraryVersion)")
        print("SQLite \(Database.libraryVersion)")
    }
}
