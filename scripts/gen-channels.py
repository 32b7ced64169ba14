#!/usr/bin/env python3
"""Writes fixtures/channels.csv: the channel registry of a district modelled on
the deployment vigil is built for. 134 smart-gate controllers across 101
communities; 1,037 fire-alarm, elevator e-bike, charging-pile and
falling-object channels across 7 "smart security" communities; the rest
spread over the other communities. Deterministic: same file every run."""
import csv, random, sys

rng = random.Random(20261128)
smart = ["君正长河华府", "云泉公馆", "恒大绿洲", "翠湖天地", "金地名京", "华润悦府", "万科城市花园"]
others = ["和平里小区", "锦绣江南", "阳光新城", "东湖花园", "紫荆苑", "滨江一号", "世纪家园", "银杏苑", "明珠花园", "春晖园"]
communities = []
for i in range(1, 102):
    code = "C%03d" % i
    name = smart[i - 1] if i <= 7 else "%s%d期" % (others[(i - 8) % len(others)], (i - 8) // len(others) + 1)
    communities.append((code, name))

rows = []
def add(prefix, n, feed, comms, route, place):
    for k in range(1, n + 1):
        code, name = comms[(k - 1) % len(comms)]
        building = "B%d" % rng.randint(1, 12)
        rows.append({"channel": "%s-%04d" % (prefix, k), "feed": feed, "community": code, "community_name": name,
                     "building": building, "location": place(building, k), "route": route})

# 134 gate controllers: one per community, a second at 33 of them.
gate_comms = communities + communities[:33]
add("sg", 134, "smart_gate", gate_comms, "access_control", lambda b, k: "%s gate %d" % ("North" if k % 2 else "South", (k % 3) + 1))
s7 = communities[:7]
add("fa", 280, "fire_alarm", s7, "fire_safety", lambda b, k: "%s fire panel zone %d" % (b, k % 8 + 1))
add("eb", 217, "elevator_ebike", s7, "property_management", lambda b, k: "%s elevator %d" % (b, k % 4 + 1))
add("cp", 420, "charging_pile", s7, "fire_safety", lambda b, k: "%s bike shed pile %d" % (b, k % 20 + 1))
add("fo", 120, "falling_object", s7, "public_safety", lambda b, k: "%s facade camera %d" % (b, k % 6 + 1))
# The rest, spread over the other 94 communities.
rest = communities[7:]
add("fx", 60, "fire_alarm", rest, "fire_safety", lambda b, k: "%s fire panel" % b)
add("cx", 80, "charging_pile", rest, "fire_safety", lambda b, k: "%s bike shed pile %d" % (b, k % 10 + 1))

out = open(sys.argv[1] if len(sys.argv) > 1 else "fixtures/channels.csv", "w", newline="", encoding="utf-8")
w = csv.DictWriter(out, fieldnames=["channel", "feed", "community", "community_name", "building", "location", "route"], lineterminator="\n")
w.writeheader()
for r in rows:
    w.writerow(r)
print("%d channels in %d communities" % (len(rows), len({r["community"] for r in rows})), file=sys.stderr)
