import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import VigilCore

/// POSTs each event to the dispatch platform, Standard Webhooks style:
/// `webhook-id` (the event id), `webhook-timestamp` and, with a secret,
/// `webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`.
/// 2xx is delivered; 408, 429 and 5xx are retried (honouring `Retry-After`);
/// any other 4xx is permanent. Connections are kept alive and reused.
public final class WebhookSink: Sink {
    public let name: String
    let url: String
    let key: [UInt8]?
    let timeout: Millis
    let concurrency: Int
    let client: HTTPClient

    public init(name: String, url: String, secret: String?, timeout: Millis, concurrency: Int) {
        self.name = name
        self.url = url
        self.key = secret.map(WebhookSink.signingKey)
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .milliseconds(min(timeout, 10_000)), read: .milliseconds(timeout))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: self.concurrency)
        config.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    deinit { try? client.syncShutdown() }

    /// A secret written `whsec_<base64>` is base64-decoded; anything else is used as raw bytes.
    public static func signingKey(_ secret: String) -> [UInt8] {
        var s = secret
        while s.hasSuffix("\n") || s.hasSuffix("\r") { s.removeLast() }
        if s.hasPrefix("whsec_"), let k = Base64.decode(String(s.dropFirst(6))) { return k }
        return Array(s.utf8)
    }

    /// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
    public static func signature(key: [UInt8], id: String, timestamp: Int64, body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: key))
        return "v1," + Base64.encode(Array(mac))
    }

    public func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome] {
        // The queue hands out at most one event per incident per batch, so the
        // events of a batch may go out in parallel without reordering an incident.
        var results = [DeliveryOutcome](repeating: .retry(reason: "not attempted", retryAfter: nil), count: batch.count)
        await withTaskGroup(of: (Int, DeliveryOutcome).self) { group in
            var next = 0
            while next < min(concurrency, batch.count) {
                let i = next
                group.addTask { (i, await self.post(batch[i])) }
                next += 1
            }
            while let (i, outcome) = await group.next() {
                results[i] = outcome
                if next < batch.count {
                    let j = next
                    group.addTask { (j, await self.post(batch[j])) }
                    next += 1
                }
            }
        }
        return results
    }

    func post(_ p: EventQueue.Pending) async -> DeliveryOutcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        let timestamp = Time.now() / 1000
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "vigil/\(VigilVersion.current)")
        request.headers.add(name: "webhook-id", value: p.eventID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        if let key { request.headers.add(name: "webhook-signature", value: WebhookSink.signature(key: key, id: p.eventID, timestamp: timestamp, body: p.body)) }
        request.body = .bytes(Array(p.body.utf8))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(timeout))
            // Drain the body so the connection can be reused.
            for try await _ in response.body {}
            return WebhookSink.outcome(response)
        } catch {
            return .retry(reason: "\(error)", retryAfter: nil)
        }
    }

    /// What an HTTP answer means for a delivery: 2xx delivered; 408, 429 and
    /// 5xx retried (after `Retry-After` when given); any other status is final.
    static func outcome(_ response: HTTPClientResponse) -> DeliveryOutcome {
        let code = Int(response.status.code)
        switch code {
        case 200..<300:
            return .delivered
        case 408, 429, 500..<600:
            return .retry(reason: "HTTP \(code)", retryAfter: response.headers.first(name: "Retry-After").flatMap(WebhookSink.retryAfter))
        default:
            return .permanent(reason: "HTTP \(code)")
        }
    }

    /// `Retry-After`: delay-seconds or an HTTP date, as milliseconds from now.
    public static func retryAfter(_ value: String) -> Millis? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if let s = Int64(v), s >= 0 { return s * 1000 }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let d = f.date(from: v) else { return nil }
        return max(0, Millis(d.timeIntervalSince1970 * 1000) - Time.now())
    }
}
