import VigilCore
import Yams

/// The `dispatch` section: queue limits, retries and the typed sinks.
extension ConfigLoader {
    /// The kind-specific keys a sink of this type takes.
    static func sinkKeys(of type: String) -> Set<String> {
        switch type {
        case "file": ["path"]
        case "webhook": ["url", "secret_file"]
        case "dingtalk", "feishu": ["url", "secret_file", "language"]
        case "wecom": ["url", "secret_file", "language"]  // secret_file: refused with its own message
        case "mqtt": ["topic", "qos", "broker"]
        default: []
        }
    }

    static func parseDispatch(_ m: YAMLMapping, _ c: inout VigilConfig, _ ctx: inout YAMLContext) {
        if let n = m.node("max_pending"), let v = ctx.int(n, "max_pending", min: 1) { c.dispatch.maxPending = v }
        if let n = m.node("overflow"), let s = ctx.string(n, "overflow") {
            if let v = VigilConfig.Overflow(rawValue: s) { c.dispatch.overflow = v } else { ctx.error(n, "overflow must be block or shed, not '\(s)'") }
        }
        if let n = m.node("shed_below"), let s = ctx.string(n, "shed_below") {
            if let v = Severity(name: s) { c.dispatch.shedBelow = v } else { ctx.error(n, "shed_below '\(s)' — use info, minor, major or critical") }
        }
        if let r = m.node("retry"), let rm = ctx.mapping(r, "retry", allowed: ["initial", "max", "max_age"]) {
            if let n = rm.node("initial"), let d = ctx.duration(n, "initial") { c.dispatch.retryInitial = d }
            if let n = rm.node("max"), let d = ctx.duration(n, "max") { c.dispatch.retryMax = d }
            if let n = rm.node("max_age"), let d = ctx.duration(n, "max_age") { c.dispatch.retryMaxAge = d }
        }
        if let s = m.node("sinks"), let items = ctx.sequence(s, "sinks") {
            var sinks: [VigilConfig.Sink] = []
            var names = Set<String>()
            for item in items {
                guard let sm = ctx.mapping(item, "a sink", allowed: sinkKeys) else { continue }
                guard let nn = sm.node("name"), let name = ctx.string(nn, "name") else { ctx.error(item, "a sink needs a name"); continue }
                guard let tn = sm.node("type"), let type = ctx.string(tn, "type") else {
                    ctx.error(item, "sink '\(name)' needs a type (log, file, webhook, mqtt, dingtalk, wecom, feishu)"); continue
                }
                if !names.insert(name).inserted { ctx.error(nn, "sink name '\(name)' is used twice"); continue }
                let kind: VigilConfig.Sink.Kind
                switch type {
                case "log": kind = .log
                case "file":
                    guard let n = sm.node("path"), let p = ctx.string(n, "path") else { ctx.error(item, "file sink '\(name)' needs a path"); continue }
                    kind = .file(path: c.resolve(p))
                case "webhook", "dingtalk", "wecom", "feishu":
                    var url: String?
                    if let n = sm.node("url"), let u = ctx.string(n, "url") {
                        if u.hasPrefix("http://") || u.hasPrefix("https://") {
                            url = u
                        } else {
                            ctx.error(n, "\(type) url '\(u)' must start with http:// or https://")
                        }
                    } else {
                        ctx.error(item, "\(type) sink '\(name)' needs a url\(type == "webhook" ? "" : " (the group robot's webhook)")")
                    }
                    if type == "wecom", let n = sm.node("secret_file"), !YAMLContext.isNull(n) {
                        ctx.error(n, "a WeCom group robot is not signed: its key is part of the url (…/webhook/send?key=…)")
                    }
                    var language = ChatLanguage.zh
                    if let n = sm.node("language"), let l = ctx.string(n, "language") {
                        if let v = ChatLanguage(rawValue: l) { language = v } else { ctx.error(n, "language must be zh or en, not '\(l)'") }
                    }
                    var secretFile: String?
                    if let n = sm.node("secret_file"), let p = ctx.optionalString(n, "secret_file") {
                        secretFile = p
                        if let p { c.fileReferences.append(.init(key: "dispatch.sinks[\(name)].secret_file", spec: p, location: ctx.location(n))) }
                    }
                    guard let url else { continue }
                    if let vendor = ChatVendor(rawValue: type) {
                        kind = .chat(vendor: vendor, url: url, secretFile: secretFile, language: language)
                    } else {
                        kind = .webhook(url: url, secretFile: secretFile)
                    }
                case "mqtt":
                    var topic = "vigil/incidents/{route}/{severity}"
                    if let n = sm.node("topic"), let t = ctx.string(n, "topic") { topic = t }
                    var qos = 1
                    if let n = sm.node("qos"), let q = ctx.int(n, "qos") {
                        if q == 0 || q == 1 { qos = q } else { ctx.error(n, "qos must be 0 or 1") }
                    }
                    var broker: VigilConfig.Broker?
                    if let n = sm.node("broker"), !YAMLContext.isNull(n) {
                        // A URL, or a mapping with the keys of the top-level `broker` (their defaults, not the ingest broker's).
                        var b = VigilConfig.Broker()
                        b.clientID = c.broker.clientID + "-sink-" + name
                        if let s = n.scalar?.string {
                            if let (tls, host, port) = parseBrokerURL(s) {
                                b.url = s; b.useTLS = tls; b.host = host; b.port = port
                            } else {
                                ctx.error(n, "broker url '\(s)' — write mqtt://HOST:PORT or mqtts://HOST:PORT")
                            }
                        } else if let bm = ctx.mapping(n, "the sink's broker", allowed: brokerKeys) {
                            parseBroker(bm, &b, &c.fileReferences, &ctx)
                        }
                        broker = b
                    }
                    kind = .mqtt(topic: topic, qos: qos, broker: broker)
                default:
                    ctx.error(tn, "unknown sink type '\(type)' — use log, file, webhook, mqtt, dingtalk, wecom or feishu")
                    continue
                }
                for key in ["path", "url", "secret_file", "language", "topic", "qos", "broker"] where !sinkKeys(of: type).contains(key) {
                    if let n = sm.keyNode(key) { ctx.error(n, "'\(key)' is not a key of a \(type) sink") }
                }
                var sink = VigilConfig.Sink(name: name, kind: kind)
                if let n = sm.node("timeout"), let d = ctx.duration(n, "timeout") { sink.timeout = d }
                if let n = sm.node("concurrency"), let v = ctx.int(n, "concurrency", min: 1) { sink.concurrency = v }
                if let n = sm.node("routes"), let list = ctx.stringList(n, "routes") { sink.routes = list.map(\.0) }
                if let n = sm.node("min_severity"), let s = ctx.string(n, "min_severity") {
                    if let v = Severity(name: s) { sink.minSeverity = v } else { ctx.error(n, "min_severity '\(s)' — use info, minor, major or critical") }
                }
                sinks.append(sink)
            }
            c.dispatch.sinks = sinks
        }
    }
}
