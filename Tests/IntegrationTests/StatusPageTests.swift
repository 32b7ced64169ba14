import Foundation
import Testing
import VigilCore
import VigilTestSupport

/// The status page in a real browser: Debian's headless Chromium driven over
/// WebDriver (chromedriver) against a running daemon and broker.
@Suite(.serialized) struct StatusPageTests {
    @Test(arguments: ["zh-CN", "en-US"])
    func theDutyDeskPageShowsAnAlarmAndAcknowledgesIt(language: String) throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let http = try freePort()
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, extra: "timezone: Asia/Shanghai\n", http: "127.0.0.1:\(http)")
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        let browser = try Browser(language: language, scratch: dir)
        defer { browser.quit() }
        let origin = "http://127.0.0.1:\(http)"
        try browser.open(origin + "/")
        try browser.waitFor("the page to load") { try browser.script("return document.body.dataset.loaded || ''") == .string("1") }
        // An alarm in 恒大绿洲 (fa-0003 in the shipped registry) appears under that community within 5 s.
        let published = Date()
        try broker.publish(topic: "\(p)/estate/C003/fire_alarm/fa-0003/event", payload: #"{"event":"alarm","zone":"Z4"}"#)
        let row = "section[data-community='恒大绿洲'] [data-incident]"
        do {
            try browser.waitFor("the alarm under 恒大绿洲", timeout: 5) { try browser.find(row) != nil }
        } catch {
            let text = try browser.script("return document.body.innerText").stringValue ?? ""
            Issue.record("page after 5 s:\n\(text.prefix(600))")
            throw error
        }
        #expect(Date().timeIntervalSince(published) < 5)
        let labels = try browser.script("return document.body.innerText").stringValue ?? ""
        if language.hasPrefix("zh") {
            #expect(labels.contains("值班台") && labels.contains("紧急") && labels.contains("确认"), "\(labels.prefix(400))")
        } else {
            #expect(labels.contains("duty desk") && labels.contains("critical") && labels.contains("Acknowledge"), "\(labels.prefix(400))")
        }
        try browser.screenshot(to: dir + "/status-\(language).png")
        #expect(FileManager.default.fileExists(atPath: dir + "/status-\(language).png"))
        // Acknowledge, giving a name at the prompt.
        let button = try #require(try browser.find("section[data-community='恒大绿洲'] button[data-ack]"))
        try browser.click(button)
        try browser.answerPrompt("值班员王五")
        try browser.waitFor("incident.acknowledged in the file sink", timeout: 10) {
            readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode).contains { $0.type == .acknowledged && $0.acknowledgedBy == "值班员王五" }
        }
        try browser.waitFor("the page to show the acknowledgement", timeout: 10) {
            (try browser.script("return document.body.innerText").stringValue ?? "").contains("值班员王五")
        }
        // Every request the page made went to the daemon.
        let urls =
            try browser.script(
                "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(function (e) { return e.name })"
            ).arrayValue ?? []
        #expect(!urls.isEmpty)
        for case .string(let u) in urls { #expect(u.hasPrefix(origin), "a request outside the daemon: \(u)") }
        #expect(vigil.stop().0 == 0)
    }
}

/// A headless Chromium driven through chromedriver's W3C WebDriver API.
final class Browser {
    let driver: Process
    let port: Int
    let session: String

    init(language: String, scratch: String) throws {
        guard let chrome = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
        else {
            throw TestFailure("the status page test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver fonts-noto-cjk)")
        }
        port = try freePort()
        driver = Process()
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/chromedriver")
        driver.arguments = ["--port=\(port)"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        for _ in 0..<100 where !isListening(port) { usleep(50_000) }
        let caps: JSONValue = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": .string(chrome),
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                            .string("--lang=\(language)"), .string("--user-data-dir=\(scratch)/chrome-\(language)"), "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        ],
                        "prefs": ["intl.accept_languages": .string(language)],
                    ],
                ]
            ]
        ]
        let (_, answer) = try Browser.call(port, "POST", "/session", caps)
        guard let id = answer["value"]["sessionId"].stringValue else { throw TestFailure("chromedriver: no session: \(answer)") }
        session = id
    }

    func quit() {
        _ = try? Browser.call(port, "DELETE", "/session/\(session)", nil)
        kill(driver.processIdentifier, SIGKILL)
        driver.waitUntilExit()
    }

    static func call(_ port: Int, _ method: String, _ path: String, _ body: JSONValue?) throws -> (Int, JSONValue) {
        guard let fd = connectLoopback(port) else { throw TestFailure("chromedriver is not listening") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let payload = Array((body.map { JSONWriter.encode($0) } ?? "").utf8)
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\n\r\n"
        let req = Array(head.utf8) + payload
        _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        // Read the head, then exactly Content-Length bytes: chromedriver may keep the connection open.
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var expected: Int?
        while true {
            if let e = expected, data.count >= e { break }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += buf[0..<n]
            if expected == nil, let end = data.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let n = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
                {
                    expected = end.upperBound + n
                }
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("chromedriver: no answer to \(method) \(path)") }
        let status = Int(text.split(separator: " ")[1]) ?? 0
        var bodyText = String(text[split.upperBound...])
        if text[..<split.lowerBound].lowercased().contains("transfer-encoding: chunked") { bodyText = Browser.unchunk(bodyText) }
        return (status, (try? JSONParser.parse(bodyText)) ?? .null)
    }

    static func unchunk(_ s: String) -> String {
        var out = "", rest = Substring(s)
        while let eol = rest.range(of: "\r\n"), let n = Int(rest[..<eol.lowerBound], radix: 16), n > 0 {
            let start = eol.upperBound
            let bytes = Array(rest[start...].utf8)
            out += String(decoding: bytes.prefix(n), as: UTF8.self)
            rest = Substring(String(decoding: bytes.dropFirst(n + 2), as: UTF8.self))
        }
        return out
    }

    @discardableResult
    func command(_ method: String, _ path: String, _ body: JSONValue? = nil) throws -> JSONValue {
        let (status, answer) = try Browser.call(port, method, "/session/\(session)\(path)", body)
        if status >= 300 { throw TestFailure("WebDriver \(method) \(path): \(status) \(answer)") }
        return answer["value"]
    }

    func open(_ url: String) throws { try command("POST", "/url", ["url": .string(url)]) }

    func script(_ js: String) throws -> JSONValue { try command("POST", "/execute/sync", ["script": .string(js), "args": []]) }

    /// The first element matching a CSS selector, or nil.
    func find(_ css: String) throws -> String? {
        let (status, answer) = try Browser.call(port, "POST", "/session/\(session)/element", ["using": "css selector", "value": .string(css)])
        guard status == 200, case .object(let o) = answer["value"] else { return nil }
        return o.values.first?.stringValue
    }

    func click(_ element: String) throws { try command("POST", "/element/\(element)/click", [:]) }

    /// Types into the open prompt() and accepts it.
    func answerPrompt(_ text: String) throws {
        var tries = 0
        while true {
            do {
                try command("POST", "/alert/text", ["text": .string(text)])
                break
            } catch {
                tries += 1
                if tries > 30 { throw error }
                usleep(100_000)
            }
        }
        try command("POST", "/alert/accept", [:])
    }

    func screenshot(to path: String) throws {
        guard let b64 = try command("GET", "/screenshot").stringValue, let png = Base64.decode(b64) else { throw TestFailure("no screenshot") }
        try Data(png).write(to: URL(fileURLWithPath: path))
    }

    func waitFor(_ what: String, timeout: TimeInterval = 10, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? cond()) == true { return }
            usleep(100_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }
}
