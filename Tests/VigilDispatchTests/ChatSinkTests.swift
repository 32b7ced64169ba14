import Foundation
import Testing
import VigilCore
@testable import VigilDispatch

@Suite struct ChatCardTests {
    /// Vectors computed with Python's hmac/base64 as each vendor's documentation shows.
    @Test func signaturesMatchTheVendorsRecipes() {
        #expect(ChatSink.dingtalkSign(secret: "SECtest-secret", timestampMillis: 1_795_852_800_000) == "En/ixS1H4HK5wcNnGO/hXo6azLJOzirFJami5crDOLk=")
        #expect(ChatSink.feishuSign(secret: "fs-secret", timestampSeconds: 1_795_852_800) == "oxS6esjjpb1AsZ5d4w+q56W/zOh89iNmavlyR/b2Xr0=")
        #expect(ChatSink.percentEncode("a+b/c=") == "a%2Bb%2Fc%3D")
    }

    static let event = IncidentEvent(
        eventID: "e1", type: .opened, incidentID: "inc-1", rule: "fire_alarm_active", severity: .critical, route: "fire_safety",
        feed: "fire_alarm", channel: "fa-0003", key: JSONObject([("channel", "fa-0003")]), title: "Fire alarm at B1 fire panel",
        labels: JSONObject(), channelInfo: JSONObject([("community_name", "恒大绿洲"), ("location", "B1 fire panel zone 4")]),
        startedAt: 1_795_852_800_000, openedAt: 1_795_852_800_000, resolvedAt: nil, at: 1_795_852_830_000, count: 1, reading: nil)

    @Test func theCardIsChineseWithLocalTime() {
        let card = ChatCard(timeZone: TimeZone(identifier: "Asia/Shanghai")!, language: .zh)
        let (title, text) = card.markdown(ChatCardTests.event)
        #expect(title == "【紧急】新告警：Fire alarm at B1 fire panel")
        for line in ["- **级别**: 紧急", "- **小区**: 恒大绿洲", "- **位置**: B1 fire panel zone 4", "- **编号**: inc-1", "- **事件**: 新告警"] {
            #expect(text.contains(line), "\(line)\n\(text)")
        }
        // 2026-11-28T08:00:30Z is 16:00:30 in Shanghai.
        #expect(text.contains("- **时间**: 2026-11-28 16:00:30"))
        let en = ChatCard(timeZone: TimeZone(identifier: "UTC")!, language: .en).markdown(ChatCardTests.event).1
        #expect(en.contains("- **Severity**: critical") && en.contains("- **Time**: 2026-11-28 08:00:30"))
    }

    @Test func eachVendorGetsItsOwnFormatAndAnErrcodeIsARefusal() {
        let zone = TimeZone(identifier: "Asia/Shanghai")!
        let ding = ChatSink(
            name: "d", vendor: .dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=t", secret: "SECtest-secret",
            timeout: 1000, timeZone: zone, language: .zh)
        let (url, body) = ding.request(for: ChatCardTests.event, now: 1_795_852_800_000)
        #expect(url == "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1795852800000&sign=En%2FixS1H4HK5wcNnGO%2FhXo6azLJOzirFJami5crDOLk%3D")
        #expect(body.contains(#""msgtype":"markdown""#))
        let feishu = ChatSink(
            name: "f", vendor: .feishu, url: "https://open.feishu.cn/open-apis/bot/v2/hook/x", secret: "fs-secret",
            timeout: 1000, timeZone: zone, language: .zh)
        let fb = feishu.request(for: ChatCardTests.event, now: 1_795_852_800_123).body
        #expect(fb.contains(#""timestamp":"1795852800""#) && fb.contains(#""sign":"oxS6esjjpb1AsZ5d4w+q56W/zOh89iNmavlyR/b2Xr0=""#))
        #expect(fb.contains(#""msg_type":"interactive""#) && fb.contains(#""template":"red""#))
        let wecom = ChatSink(
            name: "w", vendor: .wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", secret: nil,
            timeout: 1000, timeZone: zone, language: .zh)
        #expect(wecom.request(for: ChatCardTests.event, now: 0).url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")
        #expect(ding.refusal(Array(#"{"errcode":0,"errmsg":"ok"}"#.utf8)) == nil)
        #expect(ding.refusal(Array(#"{"errcode":310000,"errmsg":"sign not match"}"#.utf8)) == "dingtalk errcode 310000: sign not match")
        #expect(feishu.refusal(Array(#"{"code":0,"msg":"success"}"#.utf8)) == nil)
        #expect(feishu.refusal(Array(#"{"code":19021,"msg":"sign match fail"}"#.utf8)) != nil)
        #expect(wecom.refusal(Array("<html>".utf8)) != nil)
    }
}
