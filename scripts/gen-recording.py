#!/usr/bin/env python3
"""Writes a recorded stream (SPEC §5 JSON lines) over a channel registry, for
benchmarks: telemetry and events at realistic proportions, a few anomalies,
a few malformed messages. Deterministic for a seed.

  gen-recording.py --registry fixtures/channels.csv --lines 1000000 > rec.jsonl
  gen-recording.py --make-registry 100000 reg.csv --lines 1000000 > rec.jsonl
"""
import argparse, csv, json, random, sys

ap = argparse.ArgumentParser()
ap.add_argument("--registry", default="fixtures/channels.csv")
ap.add_argument("--make-registry", nargs=2, metavar=("N", "PATH"), help="write a registry of N channels first and use it")
ap.add_argument("--lines", type=int, default=1_000_000)
ap.add_argument("--rate", type=float, default=2000.0, help="messages per second of recorded time")
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rng = random.Random(a.seed)

feeds = ["smart_gate", "fire_alarm", "elevator_ebike", "charging_pile", "falling_object"]
if a.make_registry:
    n, path = int(a.make_registry[0]), a.make_registry[1]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["channel", "feed", "community", "building", "location", "route"])
        for i in range(n):
            feed = feeds[i % 5]
            w.writerow(["ch-%06d" % i, feed, "C%03d" % (i % 500 + 1), "B%d" % (i % 12 + 1), "site %d" % i, "default"])
    a.registry = path

channels = []
with open(a.registry, encoding="utf-8") as f:
    for r in csv.DictReader(f):
        channels.append((r["channel"], r["feed"], r.get("community") or "C000"))

topics = {"smart_gate": "event", "fire_alarm": "event", "elevator_ebike": "event", "charging_pile": "telemetry", "falling_object": "event"}
t = 1795852800000  # 2026-11-28T08:00:00Z
step = 1000.0 / a.rate
acc = 0.0
out = sys.stdout
write = out.write
piles = {}
for i in range(a.lines):
    acc += step
    ts = t + int(acc)
    ch, feed, comm = channels[rng.randrange(len(channels))]
    topic = "estate/%s/%s/%s/%s" % (comm, feed, ch, topics[feed])
    x = rng.random()
    if x < 0.001:
        write('{"ts":%d,"topic":"%s","payload_text":"{truncated"}\n' % (ts, topic)); continue
    if x < 0.01:
        p = {"status": "online" if rng.random() < 0.9 else "offline"}
        topic = "estate/%s/%s/%s/status" % (comm, feed, ch)
    elif feed == "charging_pile":
        # A pile's temperature follows its load; a session runs for minutes to hours.
        st = piles.get(ch)
        if st is None:
            st = piles[ch] = {"temp": 30.0 + rng.random() * 8, "minutes": rng.randrange(0, 240), "charging": rng.random() < 0.6}
        if rng.random() < 0.002: st["charging"] = not st["charging"]; st["minutes"] = 0
        if st["charging"]: st["minutes"] += 1 if rng.random() < 0.2 else 0
        target = 42.0 if st["charging"] else 28.0
        st["temp"] += (target - st["temp"]) * 0.05 + rng.uniform(-0.6, 0.6)
        temp = st["temp"] + (35 if rng.random() < 0.0005 else 0)
        current = rng.uniform(10, 16) if st["charging"] else 0.0
        if rng.random() < 0.0005: current = 35.0
        p = {"voltage_v": round(rng.uniform(215, 235), 1), "current_a": round(current, 1), "temperature_c": round(temp, 1),
             "power_kw": round(current * 0.22, 2), "session": "charging" if st["charging"] else "idle", "session_minutes": st["minutes"]}
    elif feed == "smart_gate":
        r = rng.random()
        if r < 0.9: p = {"event": "access", "result": "granted" if rng.random() < 0.85 else "denied", "method": rng.choice(["card", "face", "qr"])}
        elif r < 0.97: p = {"event": "door_closed"}
        elif r < 0.995: p = {"event": "door_held_open", "held_s": rng.randrange(10, 60) if rng.random() < 0.98 else rng.randrange(120, 300)}
        else: p = {"event": "door_forced"}
    elif feed == "fire_alarm":
        r = rng.random()
        p = {"event": "heartbeat"} if r < 0.995 else {"event": rng.choice(["alarm", "fault", "reset", "fault_cleared"]), "zone": "Z%d" % rng.randrange(1, 9), "detector": "smoke", "fault": "loop open"}
    elif feed == "elevator_ebike":
        p = {"event": "heartbeat"} if rng.random() < 0.97 else {"event": "ebike_detected", "confidence": round(rng.uniform(0.4, 0.99), 2), "elevator": "E%d" % rng.randrange(1, 5)}
    else:
        p = {"event": "heartbeat"} if rng.random() < 0.995 else {"event": "falling_object", "confidence": round(rng.uniform(0.3, 0.95), 2), "floor_estimate": rng.randrange(3, 30)}
    write('{"ts":%d,"topic":"%s","payload":%s}\n' % (ts, topic, json.dumps(p, separators=(",", ":"))))
