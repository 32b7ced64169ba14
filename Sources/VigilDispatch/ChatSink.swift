import AsyncHTTPClient
import Crypto
import Foundation
import VigilConfig
import VigilCore

/// Posts each event to a duty group's chat robot — DingTalk, WeCom or Feishu —
/// as a short markdown card in the receiver's own format, signed as the
/// vendor documents for its group robots:
///
/// - DingTalk: `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret,
///   "timestamp\nsecret")) in the URL's query.
/// - Feishu: `timestamp` (s) and `sign` = base64(HMAC-SHA256(key:
///   "timestamp\nsecret", message: empty)) in the body.
/// - WeCom: no signature; the robot's key is part of its URL.
///
/// Delivery follows the webhook rules (2xx, 408/429/5xx retried, other 4xx
/// permanent), and a 2xx is only a delivery when the vendor's `errcode` (or
/// Feishu's `code`) is 0: anything else is retried until `max_age`.
public final class ChatSink: Sink {
    public typealias Vendor = ChatVendor

    public let name: String
    let vendor: Vendor
    let url: String
    let secret: String?
    let timeout: Millis
    let card: ChatCard
    let client: HTTPClient

    public init(name: String, vendor: Vendor, url: String, secret: String?, timeout: Millis, timeZone: TimeZone, language: ChatCard.Language) {
        self.name = name
        self.vendor = vendor
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.card = ChatCard(timeZone: timeZone, language: language)
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .milliseconds(min(timeout, 10_000)), read: .milliseconds(timeout))
        config.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    deinit { try? client.syncShutdown() }

    /// DingTalk's `sign`: base64(HMAC-SHA256(key: secret, message: "timestamp\nsecret")), before URL encoding.
    public static func dingtalkSign(secret: String, timestampMillis: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(timestampMillis)\n\(secret)".utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return Base64.encode(Array(mac))
    }

    /// Feishu's `sign`: base64(HMAC-SHA256(key: "timestamp\nsecret", message: empty)).
    public static func feishuSign(secret: String, timestampSeconds: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: [UInt8](), using: SymmetricKey(data: Array("\(timestampSeconds)\n\(secret)".utf8)))
        return Base64.encode(Array(mac))
    }

    /// The request for one event at `now`: (URL, JSON body).
    public func request(for e: IncidentEvent, now: Millis) -> (url: String, body: String) {
        let (title, text) = card.markdown(e)
        var o = JSONObject()
        var target = url
        switch vendor {
        case .dingtalk:
            o.appendUnique("msgtype", "markdown")
            o.appendUnique("markdown", .object(JSONObject([("title", .string(title)), ("text", .string(text))])))
            if let secret {
                let sign = ChatSink.dingtalkSign(secret: secret, timestampMillis: now)
                target += (target.contains("?") ? "&" : "?") + "timestamp=\(now)&sign=" + ChatSink.percentEncode(sign)
            }
        case .wecom:
            o.appendUnique("msgtype", "markdown")
            o.appendUnique("markdown", .object(JSONObject([("content", .string(text))])))
        case .feishu:
            if let secret {
                let seconds = now / 1000
                o.appendUnique("timestamp", .string(String(seconds)))
                o.appendUnique("sign", .string(ChatSink.feishuSign(secret: secret, timestampSeconds: seconds)))
            }
            o.appendUnique("msg_type", "interactive")
            let header = JSONObject([
                ("title", .object(JSONObject([("tag", "plain_text"), ("content", .string(title))]))),
                ("template", .string(card.color(e.severity))),
            ])
            o.appendUnique(
                "card",
                .object(
                    JSONObject([
                        ("header", .object(header)),
                        ("elements", .array([.object(JSONObject([("tag", "markdown"), ("content", .string(text))]))])),
                    ])))
        }
        return (target, JSONWriter.encode(.object(o)))
    }

    /// The vendor's verdict on a 2xx answer: nil when it accepted the message.
    public func refusal(_ body: [UInt8]) -> String? {
        guard case .object(let o)? = try? JSONParser.parse(body, maxDepth: 16) else {
            return "\(vendor.rawValue): the answer is not JSON"
        }
        let codeKeys = vendor == .feishu ? ["code", "StatusCode"] : ["errcode"]
        for k in codeKeys {
            if let code = o[k]?.numberValue {
                if code == 0 { return nil }
                let message = o["errmsg"]?.stringValue ?? o["msg"]?.stringValue ?? o["StatusMessage"]?.stringValue ?? ""
                return "\(vendor.rawValue) \(k) \(Int(code)): \(message)"
            }
        }
        return "\(vendor.rawValue): the answer carries no \(codeKeys[0])"
    }

    public func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome] {
        // One at a time: group robots limit their rate, and the duty group reads in order.
        var out: [DeliveryOutcome] = []
        for p in batch { out.append(await post(p)) }
        return out
    }

    func post(_ p: EventQueue.Pending) async -> DeliveryOutcome {
        guard let e = IncidentEvent.decode(p.body) else { return .permanent(reason: "the event cannot be read") }
        let (target, body) = request(for: e, now: Time.now())
        var request = HTTPClientRequest(url: target)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.headers.add(name: "User-Agent", value: "vigil/\(VigilVersion.current)")
        request.body = .bytes(Array(body.utf8))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(timeout))
            var answer: [UInt8] = []
            for try await chunk in response.body where answer.count < 65_536 { answer += chunk.readableBytesView }
            let outcome = WebhookSink.outcome(response)
            // A robot answers 200 with a non-zero errcode/code when it refuses.
            if case .delivered = outcome, let why = refusal(answer) { return .retry(reason: why, retryAfter: nil) }
            return outcome
        } catch {
            return .retry(reason: "\(error)", retryAfter: nil)
        }
    }

    /// Percent-encoding for a query value (base64's `+`, `/` and `=` included).
    static func percentEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// The card a duty group reads: severity, title, community and location,
/// local time in the configured zone, incident id — Chinese by default.
public struct ChatCard: Sendable {
    public typealias Language = ChatLanguage
    public let timeZone: TimeZone
    public let language: Language

    public init(timeZone: TimeZone, language: Language) {
        self.timeZone = timeZone
        self.language = language
    }

    func severityName(_ s: Severity) -> String {
        switch (language, s) {
        case (.zh, .critical): return "紧急"
        case (.zh, .major): return "重要"
        case (.zh, .minor): return "一般"
        case (.zh, .info): return "提示"
        case (.en, _): return s.name
        }
    }

    func typeName(_ t: IncidentEventType) -> String {
        switch (language, t) {
        case (.zh, .opened): return "新告警"
        case (.zh, .updated): return "告警更新"
        case (.zh, .acknowledged): return "已确认"
        case (.zh, .reminded): return "提醒"
        case (.zh, .resolved): return "已恢复"
        case (.en, _): return t.shortName
        }
    }

    func color(_ s: Severity) -> String {
        switch s {
        case .critical: return "red"
        case .major: return "orange"
        case .minor: return "yellow"
        case .info: return "blue"
        }
    }

    /// `2026-11-28 16:00:30` in the card's zone.
    public func localTime(_ t: Millis) -> String {
        let offset = Millis(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t) / 1000))) * 1000
        let (days, ms) = Time.floorDivMod(t + offset, 86_400_000)
        let (y, m, d) = Time.civilFromDays(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d)) \(two(ms / 3_600_000)):\(two(ms / 60_000 % 60)):\(two(ms / 1000 % 60))"
    }

    /// (title, markdown text).
    public func markdown(_ e: IncidentEvent) -> (String, String) {
        let community = e.channelInfo["community_name"]?.stringValue ?? e.channelInfo["community"]?.stringValue ?? "-"
        let location = e.channelInfo["location"]?.stringValue ?? e.channel ?? "-"
        let severity = severityName(e.severity)
        let title = "【\(severity)】\(typeName(e.type))：\(e.title)"
        let labels: [(String, String)]
        switch language {
        case .zh:
            labels = [
                ("级别", severity), ("标题", e.title), ("小区", community), ("位置", location),
                ("时间", localTime(e.at)), ("事件", typeName(e.type)), ("编号", e.incidentID),
            ]
        case .en:
            labels = [
                ("Severity", severity), ("Title", e.title), ("Community", community), ("Location", location),
                ("Time", localTime(e.at)), ("Event", typeName(e.type)), ("Incident", e.incidentID),
            ]
        }
        var lines = ["### \(title)", ""]
        for (k, v) in labels { lines.append("- **\(k)**: \(v)") }
        if let by = e.acknowledgedBy { lines.append("- **\(language == .zh ? "确认人" : "Acknowledged by")**: \(by)") }
        if e.type == .reminded, let n = e.reminder { lines.append("- **\(language == .zh ? "提醒次数" : "Reminder")**: \(n)") }
        return (title, lines.joined(separator: "\n"))
    }
}
