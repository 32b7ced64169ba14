// Simulator: the messages of each feed, normal traffic and anomalies, and number formatting.

import Foundation
import VigilCore

extension Simulator {
    // MARK: messages

    func topic(_ i: Int, _ leaf: String) -> String {
        "estate/\(channels[i].community)/\(channels[i].feed)/\(channels[i].id)/\(leaf)"
    }

    func eventTopic(_ i: Int) -> String { topic(i, channels[i].feed == "charging_pile" ? "telemetry" : "event") }

    mutating func message(for action: Action, channel i: Int, now: Double) -> SimMessage {
        let fields: String
        switch action {
        case .telemetry: return pile(i, now: now)
        case .alarm:
            fields = "\"event\":\"alarm\",\"zone\":\"Z\(1 + rng.below(8))\",\"detector\":\"\(rng.pick(["smoke", "heat", "manual_call_point"]))\""
        case .reset: fields = "\"event\":\"reset\""
        case .fault:
            fields =
                "\"event\":\"fault\",\"zone\":\"Z\(1 + rng.below(8))\",\"fault\":\"\(rng.pick(["loop open", "battery low", "earth fault", "detector missing"]))\""
        case .faultCleared: fields = "\"event\":\"fault_cleared\""
        case .ebike:
            fields = "\"event\":\"ebike_detected\",\"confidence\":\(fixed(rng.uniform(0.82, 0.97), 2)),\"elevator\":\"E\(states[i].elevator)\",\"floor\":1"
        case .fallingObject:
            fields = "\"event\":\"falling_object\",\"confidence\":\(fixed(rng.uniform(0.70, 0.95), 2)),\"floor_estimate\":\(3 + rng.below(28))"
        case .denied: fields = "\"event\":\"access\",\"result\":\"denied\",\"method\":\"\(rng.pick(["card", "face", "qr"]))\""
        case .forced: fields = "\"event\":\"door_forced\""
        case .held: fields = "\"event\":\"door_held_open\",\"held_s\":\(150 + rng.below(151))"
        case .doorClosed: fields = "\"event\":\"door_closed\""
        case .offline: return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"offline\""))
        case .online: return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        case .malformed(let variant):
            let bytes: [UInt8]
            switch variant {
            case 0: bytes = Array("{\"event\":\"heartbeat\",\"zo".utf8)
            case 1: bytes = Array("[1,2,3]".utf8)
            case 2: bytes = Array("{\"event\":\"".utf8) + [0xFF, 0xFE] + Array("\"}".utf8)
            default: bytes = Array(String(repeating: "{\"a\":", count: 40).utf8) + Array("1".utf8) + Array(repeating: UInt8(ascii: "}"), count: 40)
            }
            return SimMessage(topic: eventTopic(i), body: .raw(bytes, reason: Simulator.malformedReasons[variant]))
        }
        return SimMessage(topic: eventTopic(i), body: .fields(fields))
    }

    /// A channel's own traffic.
    mutating func normal(_ i: Int, now: Double) -> SimMessage {
        if rng.chance(0.004) {
            // Devices announce themselves now and then (reconnects, LWT-style status).
            return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        }
        switch channels[i].feed {
        case "charging_pile": return pile(i, now: now)
        case "smart_gate": return gate(i, now: now)
        case "fire_alarm":
            return SimMessage(
                topic: eventTopic(i),
                body: .fields(
                    "\"event\":\"heartbeat\",\"panel\":\"normal\",\"battery_v\":\(fixed(rng.uniform(26.8, 27.6), 1))"))
        case "elevator_ebike":
            // Pushchairs and scooters: detections the cameras are unsure of.
            if rng.chance(0.03) {
                return SimMessage(
                    topic: eventTopic(i),
                    body: .fields(
                        "\"event\":\"ebike_detected\",\"confidence\":\(fixed(rng.uniform(0.30, 0.58), 2)),\"elevator\":\"E\(states[i].elevator)\",\"floor\":\(1 + rng.below(3))"
                    ))
            }
            return SimMessage(
                topic: eventTopic(i),
                body: .fields(
                    "\"event\":\"heartbeat\",\"elevator\":\"E\(states[i].elevator)\",\"floor\":\(1 + rng.below(30)),\"occupancy\":\(rng.below(7))"))
        case "falling_object":
            // Birds and leaves.
            if rng.chance(0.005) {
                return SimMessage(
                    topic: eventTopic(i),
                    body: .fields(
                        "\"event\":\"falling_object\",\"confidence\":\(fixed(rng.uniform(0.20, 0.50), 2)),\"floor_estimate\":\(3 + rng.below(28))"))
            }
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"heartbeat\",\"lens\":\"clear\""))
        default:
            return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        }
    }

    /// Pile telemetry: a charge session's lifecycle; current follows the
    /// session, temperature follows current with a two-minute time constant.
    mutating func pile(_ i: Int, now: Double) -> SimMessage {
        var s = states[i]
        let dt = max(0, now - s.last)
        s.last = now
        if s.charging {
            s.sessionMinutes += dt / 60_000
            if s.sessionMinutes >= s.sessionLength {
                s.charging = false
                s.idleUntil = now + rng.uniform(5, 90) * 60_000
            }
        } else if now >= s.idleUntil {
            s.charging = true
            s.sessionMinutes = 0
            s.sessionLength = rng.uniform(45, 420)
            s.current = rng.uniform(10, 15)
        }
        if s.charging {
            s.current = min(16, max(8, s.current + rng.uniform(-0.4, 0.4)))
            // The last fifth of a session tapers off.
            if s.sessionMinutes > s.sessionLength * 0.8 { s.current *= 0.98 }
        } else {
            s.current = 0
        }
        var current = s.current
        if now < s.overUntil { current = rng.uniform(36, 42) }
        let ambient = 22 + 4 * sin((now / 3_600_000 + 8) * .pi / 12)
        let target = ambient + current * 1.2
        if now < s.hotUntil {
            s.temperature = 66 + 14 * (now - s.hotStart) / 45_000 + rng.uniform(0, 0.5)
        } else {
            let tau = s.temperature > 50 ? 20_000.0 : 120_000.0
            s.temperature += (target - s.temperature) * (1 - exp(-dt / tau)) + rng.uniform(-0.3, 0.3)
        }
        states[i] = s
        let voltage = rng.uniform(214, 232)
        let session = s.charging ? "charging" : "idle"
        return SimMessage(
            topic: eventTopic(i),
            body: .fields(
                "\"voltage_v\":\(fixed(voltage, 1)),\"current_a\":\(fixed(current, 1)),\"temperature_c\":\(fixed(s.temperature, 1)),"
                    + "\"power_kw\":\(fixed(voltage * current / 1000, 2)),\"session\":\"\(session)\",\"session_minutes\":\(Int(s.sessionMinutes))"))
    }

    /// Gate events: accesses (some denied, never five within two minutes on
    /// their own), doors held briefly and closed.
    mutating func gate(_ i: Int, now: Double) -> SimMessage {
        if states[i].doorOpen {
            states[i].doorOpen = false
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"door_closed\""))
        }
        let r = rng.unit()
        if r < 0.9 {
            states[i].denied.removeAll { now - $0 >= 150_000 }
            var result = "granted"
            if rng.chance(0.12), states[i].denied.count < 2 {
                result = "denied"
                states[i].denied.append(now)
            }
            let method = r < 0.45 ? "face" : r < 0.77 ? "card" : "qr"
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"access\",\"result\":\"\(result)\",\"method\":\"\(method)\""))
        }
        states[i].doorOpen = true
        return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"door_held_open\",\"held_s\":\(15 + rng.below(76))"))
    }
}

/// `x` with `digits` decimals and no trailing noise.
func fixed(_ x: Double, _ digits: Int) -> String {
    let scale = digits == 1 ? 10.0 : 100.0
    let v = (x * scale).rounded() / scale
    if v == v.rounded() { return String(Int(v)) }
    return String(v)
}
