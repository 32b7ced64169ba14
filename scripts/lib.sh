# Shared by scripts/demo, scripts/test, scripts/package, scripts/soak, scripts/bench,
# scripts/bench-desk, scripts/profile and .ci/run.

# Installs the Debian packages vigil needs, when any is missing.
vigil_install_deps() {
  local pkgs="mosquitto mosquitto-clients libmosquitto-dev libsqlite3-dev pkg-config tzdata python3 curl"
  # The tests also drive a real browser (the status page) and build a C shim (the power-cut test).
  [ "${1:-}" = tests ] && pkgs="$pkgs chromium chromium-driver fonts-noto-cjk gcc libc6-dev"
  local missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
}

# CPU a process has used, user and system, in clock ticks (100 a second).
vigil_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A free TCP port on 127.0.0.1.
vigil_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a private mosquitto on 127.0.0.1:$1 with its files in $2; sets MOSQUITTO_PID.
vigil_start_broker() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 0
CONF
  /usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  MOSQUITTO_PID=$!
  for _ in $(seq 1 50); do
    if mosquitto_pub -h 127.0.0.1 -p "$port" -t vigil/ping -m x -q 0 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "mosquitto did not start on port $port; its log:" >&2
  cat "$dir/mosquitto.log" >&2
  return 1
}

# The shipped config/vigil.yaml pointed at a broker on 127.0.0.1:$1 and the state
# directory $2 (file sink in it), with the repository's registry and rules; further
# arguments are sed expressions applied after those. Writes to stdout.
#   vigil_config 1883 /tmp/state 's#listen: 127.0.0.1:9464#listen: null#' > vigil.yaml
vigil_config() {
  local port=$1 state=$2 root e
  root=$(pwd)
  shift 2
  local extra=()
  for e in "$@"; do extra+=(-e "$e"); done
  # JOURNAL_SYNC=normal measures the journal without a sync per commit (scripts/soak, scripts/bench).
  [ -n "${JOURNAL_SYNC:-}" ] && extra+=(-e "s#^  sync: full #  sync: $JOURNAL_SYNC #")
  sed -e "s#url: mqtt://127.0.0.1:1883#url: mqtt://127.0.0.1:$port#" \
      -e "s#^channels: channels.csv#channels: $root/config/channels.csv#" \
      -e "s#^rules: \[\"rules.d/\*.yaml\"\]#rules: [\"$root/config/rules.d/*.yaml\"]#" \
      -e "s#^state_dir: /var/lib/vigil#state_dir: $state#" \
      -e "s#path: /var/lib/vigil/incidents.jsonl#path: $state/incidents.jsonl#" \
      "${extra[@]}" "$root/config/vigil.yaml"
}

# Fails when the binary $1 defines a libc function of its own (vigil never
# interposes on libc: read, write, recv, send), in its static or dynamic symbols.
vigil_check_no_libc_symbols() {
  local bin=$1 syms
  command -v nm >/dev/null || { echo "checking $bin for libc symbols needs nm (binutils)" >&2; return 1; }
  [ -f "$bin" ] || { echo "no binary at $bin to check for libc symbols" >&2; return 1; }
  syms=$(nm --defined-only "$bin") || return 1
  syms+=$'\n'$(nm -D --defined-only "$bin") || return 1
  if awk '$3 == "read" || $3 == "write" || $3 == "recv" || $3 == "send" { found = 1 } END { exit !found }' <<<"$syms"; then
    echo "$bin defines a libc function of its own" >&2
    return 1
  fi
}
