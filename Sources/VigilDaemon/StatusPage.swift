/// The duty desk's page (`GET /`): one self-contained document — HTML, CSS
/// and JavaScript here, no external request (the district network has no
/// internet). It polls the API every 2 s; open incidents are grouped by
/// community, most severe first, with age, location and an acknowledge
/// button; beside them the broker connection, rates per feed, dead letters,
/// silent channels and the queue per sink. Chinese or English by the
/// browser's language (`?lang=zh|en` overrides); times in `timezone`.
enum StatusPage {
    static let html = """
        <!DOCTYPE html>
        <html lang="zh">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>vigil</title>
        <link rel="icon" href="data:,">
        <style>
        :root { --bg:#0f1419; --panel:#182029; --line:#2a3542; --text:#e6edf3; --dim:#8b98a5;
                --critical:#f85149; --major:#f0883e; --minor:#d29922; --info:#58a6ff; --ok:#3fb950; }
        * { box-sizing: border-box; }
        body { margin:0; font:14px/1.45 system-ui, "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; background:var(--bg); color:var(--text); }
        header { display:flex; gap:16px; align-items:center; padding:10px 18px; border-bottom:1px solid var(--line); background:var(--panel); position:sticky; top:0; z-index:2; }
        header h1 { font-size:17px; margin:0; font-weight:600; }
        .pill { padding:2px 10px; border-radius:12px; font-size:12px; border:1px solid var(--line); }
        .pill.ok { color:var(--ok); border-color:var(--ok); } .pill.bad { color:var(--critical); border-color:var(--critical); }
        .spacer { flex:1; } .dim { color:var(--dim); }
        main { display:grid; grid-template-columns: minmax(0,1fr) 320px; gap:16px; padding:16px 18px; }
        @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
        section.community { background:var(--panel); border:1px solid var(--line); border-radius:8px; margin-bottom:14px; }
        section.community h2 { font-size:15px; margin:0; padding:8px 12px; border-bottom:1px solid var(--line); display:flex; gap:10px; }
        .inc { display:grid; grid-template-columns: 80px minmax(0,1fr) auto; gap:10px; padding:8px 12px; border-bottom:1px solid var(--line); align-items:center; }
        .inc:last-child { border-bottom:0; }
        .sev { font-weight:600; font-size:12px; text-align:center; border-radius:4px; padding:2px 0; }
        .sev.critical { background:var(--critical); color:#fff; } .sev.major { background:var(--major); color:#111; }
        .sev.minor { background:var(--minor); color:#111; } .sev.info { background:var(--info); color:#111; }
        .title { font-weight:500; overflow-wrap:anywhere; } .meta { font-size:12px; color:var(--dim); }
        button { background:#238636; color:#fff; border:0; border-radius:6px; padding:6px 12px; font:inherit; cursor:pointer; }
        button:disabled { background:#30363d; cursor:default; }
        .acked { font-size:12px; color:var(--ok); text-align:right; }
        aside .box { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; margin-bottom:14px; }
        aside h3 { margin:0 0 6px; font-size:13px; color:var(--dim); font-weight:600; }
        table { width:100%; border-collapse:collapse; font-size:13px; } td { padding:2px 0; } td.n { text-align:right; font-variant-numeric: tabular-nums; }
        .empty { padding:40px; text-align:center; color:var(--dim); background:var(--panel); border:1px dashed var(--line); border-radius:8px; }
        </style>
        </head>
        <body>
        <header>
          <h1 id="title">vigil</h1>
          <span id="broker" class="pill">…</span>
          <span id="health" class="pill">…</span>
          <span class="spacer"></span>
          <span id="counts" class="dim"></span>
          <span id="clock" class="dim"></span>
        </header>
        <main>
          <div id="incidents"><div class="empty" id="loading">…</div></div>
          <aside>
            <div class="box"><h3 id="h-feeds"></h3><table id="feeds"></table></div>
            <div class="box"><h3 id="h-silent"></h3><table id="silent"></table></div>
            <div class="box"><h3 id="h-queue"></h3><table id="queue"></table></div>
            <div class="box"><h3 id="h-dead"></h3><table id="dead"></table></div>
          </aside>
        </main>
        <script>
        (function () {
          "use strict";
          var params = new URLSearchParams(location.search);
          var lang = params.get("lang") || ((navigator.languages && navigator.languages[0]) || navigator.language || "en");
          lang = lang.toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
          document.documentElement.lang = lang;
          var T = {
            zh: { title: "vigil 值班台", connected: "已连接代理", disconnected: "代理未连接", healthy: "运行正常", unhealthy: "异常",
                  open: "未处理告警", none: "当前没有未处理的告警", ack: "确认", acked: "已确认", by: "确认人", name: "请输入您的姓名（用于确认记录）：",
                  note: "备注（可留空）：", token: "请输入访问令牌：", feeds: "各类设备消息速率", silent: "当前静默的通道", queue: "待投递队列",
                  dead: "死信", rate: "/秒", none2: "无", ago: "前", failed: "确认失败：",
                  sev: { critical: "紧急", major: "重要", minor: "一般", info: "提示" }, units: ["秒", "分钟", "小时", "天"] },
            en: { title: "vigil duty desk", connected: "broker connected", disconnected: "broker disconnected", healthy: "healthy", unhealthy: "unhealthy",
                  open: "open incidents", none: "No open incidents", ack: "Acknowledge", acked: "Acknowledged", by: "by", name: "Your name (for the acknowledgement):",
                  note: "Note (optional):", token: "Access token:", feeds: "Messages per feed", silent: "Channels silent now", queue: "Queue per sink",
                  dead: "Dead letters", rate: "/s", none2: "none", ago: "ago", failed: "Acknowledgement failed: ",
                  sev: { critical: "critical", major: "major", minor: "minor", info: "info" }, units: ["s", "min", "h", "d"] }
          }[lang];
          var order = { critical: 3, major: 2, minor: 1, info: 0 };
          var zone = "UTC";
          var $ = function (id) { return document.getElementById(id); };
          function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
          function when(iso) {
            try { return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
                  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).format(new Date(iso)); } catch (e) { return iso; }
          }
          function age(seconds) {
            var u = T.units, v = seconds < 60 ? [seconds, u[0]] : seconds < 3600 ? [Math.floor(seconds / 60), u[1]] :
                    seconds < 86400 ? [Math.floor(seconds / 3600), u[2]] : [Math.floor(seconds / 86400), u[3]];
            return lang === "zh" ? v[0] + v[1] + T.ago : v[0] + " " + v[1] + " " + T.ago;
          }
          function token() { return localStorage.getItem("vigil.token") || ""; }
          function request(method, path, body) {
            var headers = { "Accept": "application/json" };
            if (body) headers["Content-Type"] = "application/json";
            if (token()) headers["Authorization"] = "Bearer " + token();
            return fetch(path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined, cache: "no-store" })
              .then(function (r) {
                if (r.status === 401) {
                  var t = prompt(T.token);
                  if (t) { localStorage.setItem("vigil.token", t); return request(method, path, body); }
                }
                return r.json().then(function (j) { return { status: r.status, body: j }; });
              });
          }
          $("title").textContent = T.title; document.title = T.title;
          $("h-feeds").textContent = T.feeds; $("h-silent").textContent = T.silent; $("h-queue").textContent = T.queue; $("h-dead").textContent = T.dead;

          function rows(pairs) {
            return pairs.length ? pairs.map(function (p) { return "<tr><td>" + esc(p[0]) + "</td><td class=n>" + esc(p[1]) + "</td></tr>"; }).join("")
                                : "<tr><td class=dim>" + T.none2 + "</td></tr>";
          }
          function renderStatus(s) {
            zone = s.timezone || "UTC";
            $("broker").textContent = s.broker.connected ? T.connected : T.disconnected;
            $("broker").className = "pill " + (s.broker.connected ? "ok" : "bad");
            $("health").textContent = s.health.status === "ok" ? T.healthy : T.unhealthy + (s.health.reason ? ": " + s.health.reason : "");
            $("health").className = "pill " + (s.health.status === "ok" ? "ok" : "bad");
            $("clock").textContent = when(s.now) + " (" + zone + ")";
            $("feeds").innerHTML = rows(s.feeds.map(function (f) { return [f.feed, f.rate_per_s + T.rate]; }));
            $("silent").innerHTML = rows(s.silent_channels.map(function (c) { return [(c.community || "") + " " + (c.location || c.channel), when(c.since)]; }));
            $("queue").innerHTML = rows(Object.keys(s.queue).map(function (k) { return [k, s.queue[k]]; }));
            $("dead").innerHTML = rows(Object.keys(s.dead_letters).filter(function (k) { return s.dead_letters[k] > 0; })
                                         .map(function (k) { return [k, s.dead_letters[k]]; }));
          }
          function renderIncidents(list) {
            $("counts").textContent = list.length + " " + T.open;
            if (!list.length) { $("incidents").innerHTML = "<div class=empty>" + T.none + "</div>"; return; }
            var groups = {};
            list.forEach(function (i) { var c = i.community || "-"; (groups[c] = groups[c] || []).push(i); });
            var names = Object.keys(groups).sort(function (a, b) {
              var ma = Math.max.apply(null, groups[a].map(function (i) { return order[i.severity]; }));
              var mb = Math.max.apply(null, groups[b].map(function (i) { return order[i.severity]; }));
              return mb - ma || groups[b].length - groups[a].length || (a < b ? -1 : 1);
            });
            var html = [];
            names.forEach(function (name) {
              var g = groups[name].sort(function (a, b) { return order[b.severity] - order[a.severity] || (a.opened_at < b.opened_at ? 1 : -1); });
              html.push("<section class=community data-community=\\"" + esc(name) + "\\"><h2>" + esc(name) + "<span class=dim>" + g.length + "</span></h2>");
              g.forEach(function (i) {
                var right = i.acknowledged_at
                  ? "<div class=acked>" + T.acked + "<br>" + esc(i.acknowledged_by) + "</div>"
                  : "<button data-ack=\\"" + esc(i.id) + "\\">" + T.ack + "</button>";
                html.push("<div class=inc data-incident=\\"" + esc(i.id) + "\\" data-severity=" + esc(i.severity) + ">" +
                  "<div class=\\"sev " + esc(i.severity) + "\\">" + esc(T.sev[i.severity] || i.severity) + "</div>" +
                  "<div><div class=title>" + esc(i.title) + "</div><div class=meta>" + esc(i.location || i.channel || "") + " · " +
                  esc(age(i.age_seconds)) + " · " + esc(when(i.opened_at)) + "</div></div>" + right + "</div>");
              });
              html.push("</section>");
            });
            $("incidents").innerHTML = html.join("");
          }
          function refresh() {
            return Promise.all([request("GET", "api/v1/status"), request("GET", "api/v1/incidents?state=open&limit=5000")])
              .then(function (r) {
                renderStatus(r[0].body); renderIncidents(r[1].body.incidents || []);
                if (!document.body.dataset.loaded) document.body.dataset.renderMs = String(Math.round(performance.now()));
                document.body.dataset.loaded = "1";
              })
              .catch(function () { $("broker").textContent = "…"; $("broker").className = "pill bad"; });
          }
          $("incidents").addEventListener("click", function (e) {
            var id = e.target && e.target.getAttribute && e.target.getAttribute("data-ack");
            if (!id) return;
            var name = localStorage.getItem("vigil.name") || "";
            name = prompt(T.name, name);
            if (!name || !name.trim()) return;
            localStorage.setItem("vigil.name", name.trim());
            e.target.disabled = true;
            request("POST", "api/v1/incidents/" + encodeURIComponent(id) + "/ack", { by: name.trim() }).then(function (r) {
              if (r.status >= 300) alert(T.failed + (r.body && r.body.error || r.status));
              return refresh();
            });
          });
          refresh();
          setInterval(refresh, 2000);
        })();
        </script>
        </body>
        </html>
        """
}
