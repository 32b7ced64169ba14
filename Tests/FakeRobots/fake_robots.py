#!/usr/bin/env python3
"""Fake DingTalk, WeCom and Feishu group robots for vigil's chat-sink tests.

Each robot checks the request the way its vendor documents it, with Python's
own hmac/base64 (independent of vigil's code), answers in the vendor's format,
and appends one JSON line per request to the log file:
  {"vendor": ..., "ok": true|false, "why": ..., "body": {...}}

  fake_robots.py PORT LOG DINGTALK_SECRET WECOM_KEY FEISHU_SECRET [DINGTALK_BUSY]

DINGTALK_BUSY: how many of the first DingTalk requests are answered
errcode 130101 ("send too fast") before the robot accepts.
"""
import base64, hashlib, hmac, json, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path, ding_secret, wecom_key, feishu_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
busy = [int(sys.argv[6]) if len(sys.argv) > 6 else 0]


def record(vendor, ok, why, body):
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"vendor": vendor, "ok": ok, "why": why, "body": body}, ensure_ascii=False) + "\n")


class Robot(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw.decode("utf-8"))
        except Exception:
            body = None
        if url.path.startswith("/dingtalk"):
            ts = query.get("timestamp", [""])[0]
            sign = query.get("sign", [""])[0]
            want = base64.b64encode(hmac.new(ding_secret.encode(), f"{ts}\n{ding_secret}".encode(), hashlib.sha256).digest()).decode()
            fresh = ts.isdigit() and abs(time.time() * 1000 - int(ts)) < 3600 * 1000
            shaped = body and body.get("msgtype") == "markdown" and "text" in body.get("markdown", {})
            if not (fresh and sign == want):
                record("dingtalk", False, "sign", body); return self.answer({"errcode": 310000, "errmsg": "sign not match"})
            if not shaped:
                record("dingtalk", False, "body", body); return self.answer({"errcode": 40035, "errmsg": "missing parameter"})
            if busy[0] > 0:
                busy[0] -= 1
                record("dingtalk", False, "busy", body); return self.answer({"errcode": 130101, "errmsg": "send too fast"})
            record("dingtalk", True, "", body); return self.answer({"errcode": 0, "errmsg": "ok"})
        if url.path.startswith("/wecom"):
            if query.get("key", [""])[0] != wecom_key:
                record("wecom", False, "key", body); return self.answer({"errcode": 93000, "errmsg": "invalid webhook url"})
            if not (body and body.get("msgtype") == "markdown" and "content" in body.get("markdown", {})):
                record("wecom", False, "body", body); return self.answer({"errcode": 40008, "errmsg": "invalid message type"})
            record("wecom", True, "", body); return self.answer({"errcode": 0, "errmsg": "ok"})
        if url.path.startswith("/feishu"):
            ts = str((body or {}).get("timestamp", ""))
            want = base64.b64encode(hmac.new(f"{ts}\n{feishu_secret}".encode(), b"", hashlib.sha256).digest()).decode()
            fresh = ts.isdigit() and abs(time.time() - int(ts)) < 3600
            if not (fresh and (body or {}).get("sign") == want):
                record("feishu", False, "sign", body); return self.answer({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
            if body.get("msg_type") != "interactive":
                record("feishu", False, "body", body); return self.answer({"code": 9499, "msg": "Bad Request"})
            record("feishu", True, "", body); return self.answer({"code": 0, "msg": "success"})
        self.send_response(404); self.end_headers()


ThreadingHTTPServer(("127.0.0.1", port), Robot).serve_forever()
