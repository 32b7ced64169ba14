# Shared by scripts/demo, scripts/test and .ci/run.

# Installs the Debian packages vigil needs, when any is missing.
vigil_install_deps() {
  local pkgs="mosquitto mosquitto-clients libmosquitto-dev libsqlite3-dev pkg-config tzdata python3 curl"
  local missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
}

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
