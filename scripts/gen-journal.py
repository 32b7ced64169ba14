#!/usr/bin/env python3
"""Fills the journal of a vigil state database with a recording's messages,
as the daemon journals them (kind 0 rows: received_at, mid, topic, payload),
until the journal holds --bytes by the daemon's own measure
(payload + topic + 32 per row, the measure of journal.max_size). The times
run from --hours ago up to now, so a daemon started on the file keeps them
(journal.retention is 24 h), and the last checkpoint is moved past them, so
a daemon started on the file does not re-evaluate them. For the backtest
benchmarks (scripts/bench, BACKTEST= in scripts/soak).

  gen-journal.py STATE_DB RECORDING [--bytes 1073741824] [--hours 20]
"""
import argparse, base64, json, sqlite3, time

ap = argparse.ArgumentParser()
ap.add_argument("db")
ap.add_argument("recording")
ap.add_argument("--bytes", type=int, default=1 << 30)
ap.add_argument("--hours", type=float, default=20.0)
a = ap.parse_args()

messages = []
with open(a.recording) as f:
    for line in f:
        r = json.loads(line)
        if "topic" not in r:
            continue
        if "payload" in r:
            body = json.dumps(r["payload"], separators=(",", ":"), ensure_ascii=False).encode()
        elif "payload_text" in r:
            body = r["payload_text"].encode()
        elif "payload_base64" in r:
            body = base64.b64decode(r["payload_base64"])
        else:
            continue
        messages.append((r["topic"], body))
per_row = sum(len(t.encode()) + len(b) + 32 for t, b in messages) / len(messages)
rows = int(a.bytes / per_row)
now = int(time.time() * 1000)
start = now - int(a.hours * 3_600_000)
step = (now - start) / rows

def generate():
    for i in range(rows):
        topic, body = messages[i % len(messages)]
        yield (start + int(i * step), 0, i % 65535 + 1, topic, body)

db = sqlite3.connect(a.db)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=OFF")
with db:
    db.executemany("INSERT INTO journal(received_at, kind, mid, topic, payload) VALUES (?,?,?,?,?)", generate())
# The rows are history, not input to recover: the last checkpoint covers them.
with db:
    db.execute("UPDATE checkpoint SET journal_seq = (SELECT max(seq) FROM journal)")
total = db.execute("SELECT count(*), sum(length(payload) + length(topic) + 32) FROM journal").fetchone()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(f"journal: {total[0]} rows, {total[1] / (1 << 20):.0f} MiB by journal.max_size's measure")
