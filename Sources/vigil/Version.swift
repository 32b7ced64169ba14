import ArgumentParser
import VigilCore
import VigilConfig
import VigilDaemon
import VigilIngest
import VigilRules
import VigilMQTT
import VigilStore

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of vigil, libmosquitto and SQLite.")

    func run() async throws {
        print("vigil \(VigilVersion.current)")
        print("libmosquitto \(MosquittoClient.libraryVersion)")
        print("SQLite \(Database.libraryVersion)")
    }
}
