import Testing
import VigilCore
import VigilMQTT

/// The connection's life with a clock of the test's own: every event is fed by hand.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    let backoff = Backoff(initial: 1000, max: 8000)

    func connected(at now: Millis = 0) -> Machine {
        var m = Machine(backoff: backoff)
        _ = m.tick(now: now)
        _ = m.connack(code: 0, reason: "accepted", sessionPresent: false, now: now)
        return m
    }

    @Test func theFirstTickConnectsAndAnAcceptedConnackSubscribes() {
        var m = Machine(backoff: backoff)
        #expect(!m.mayWrite)
        #expect(m.tick(now: 0) == [.connect(first: true)])
        #expect(m.state == .connecting)
        #expect(m.tick(now: 5) == [])
        #expect(m.connack(code: 0, reason: "accepted", sessionPresent: true, now: 10) == [.announceConnected(sessionPresent: true), .subscribe])
        #expect(m.state == .connected(sessionPresent: true) && m.isConnected && m.mayWrite)
    }

    @Test func nothingIsWrittenWhileAMessageReadIsUncommitted() {
        var m = connected()
        #expect(m.writeStep() == [.write])
        m.messagesRead(3)
        #expect(!m.mayWrite)
        #expect(m.writeStep() == [])
        m.messagesRead(1)
        #expect(m.uncommitted == 4)
        #expect(m.committed() == [.write])
        #expect(m.mayWrite && m.uncommitted == 0)
        // A turn that read nothing holds nothing.
        m.messagesRead(0)
        #expect(m.writeStep() == [.write])
    }

    @Test func stoppingWithAnUncommittedReadSendsNoFlush() {
        var m = connected()
        m.messagesRead(1)
        #expect(m.stop() == [.disconnect])
        var n = connected()
        #expect(n.stop() == [.disconnect, .write])
        #expect(n.state == .stopped && !n.mayWrite)
        var idle = Machine(backoff: backoff)
        #expect(idle.stop() == [])
    }

    @Test func aLostConnectionIsTriedAgainAfterTheBackoffWhichDoublesAndIsCapped() {
        var m = connected(at: 0)
        #expect(m.connectionLost(reason: "reset", now: 100) == [.announceLost(reason: "reset", retryIn: 1000)])
        #expect(m.state == .waiting(until: 1100) && !m.isConnected)
        #expect(m.tick(now: 1099) == [])
        #expect(m.tick(now: 1100) == [.connect(first: false)])
        // Refused, unreachable, unreachable, …: 2 s, 4 s, 8 s, 8 s.
        #expect(
            m.connack(code: 5, reason: "not authorised", sessionPresent: false, now: 1100)
                == [.announceFailed(reason: "not authorised", refused: true, retryIn: 2000)])
        #expect(m.tick(now: 3100) == [.connect(first: false)])
        #expect(
            m.connectFailed(reason: "connection refused", now: 3100)
                == [.announceFailed(reason: "connection refused", refused: false, retryIn: 4000)])
        #expect(m.tick(now: 7100) == [.connect(first: false)])
        #expect(m.connectionLost(reason: "closed", now: 7100) == [.announceFailed(reason: "closed", refused: false, retryIn: 8000)])
        #expect(m.tick(now: 15_100) == [.connect(first: false)])
        #expect(m.connectFailed(reason: "x", now: 15_100) == [.announceFailed(reason: "x", refused: false, retryIn: 8000)])
        #expect(m.failures == 5)
        // An accepted CONNACK starts the backoff over.
        _ = m.tick(now: 23_100)
        _ = m.connack(code: 0, reason: "accepted", sessionPresent: false, now: 23_100)
        #expect(m.failures == 0)
        #expect(m.connectionLost(reason: "gone", now: 30_000) == [.announceLost(reason: "gone", retryIn: 1000)])
    }

    @Test func theFirstAttemptFailingStillCountsAsTheFirst() {
        var m = Machine(backoff: backoff)
        #expect(m.tick(now: 0) == [.connect(first: true)])
        #expect(m.connectFailed(reason: "no route", now: 0) == [.announceFailed(reason: "no route", refused: false, retryIn: 1000)])
        #expect(m.tick(now: 1000) == [.connect(first: false)])
    }

    @Test func eventsThatDoNotFitTheStateAreIgnored() {
        var m = Machine(backoff: backoff)
        #expect(m.connack(code: 0, reason: "accepted", sessionPresent: false, now: 0) == [])
        #expect(m.connectionLost(reason: "x", now: 0) == [])
        var c = connected()
        #expect(c.connack(code: 0, reason: "accepted", sessionPresent: true, now: 1) == [])
        #expect(c.connectFailed(reason: "x", now: 1) == [])
        #expect(c.state == .connected(sessionPresent: false))
        _ = c.stop()
        #expect(c.tick(now: 100_000) == [])
    }

    @Test func jitteredBackoffStaysBetweenInitialAndTheCeiling() {
        let b = Backoff(initial: 100, max: 1000, jitter: true)
        for attempts in 0..<12 {
            let d = b.delay(afterAttempts: attempts)
            #expect(d >= 100 && d <= min(1000, 100 << attempts))
        }
        #expect(Backoff(initial: 250, max: 5000).delay(afterAttempts: 60) == 5000)
    }
}
