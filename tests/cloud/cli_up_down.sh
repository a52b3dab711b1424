#!/usr/bin/env bash
# `nimbus cloud up`, the operator's views and `down --purge`, as a user runs them
# (docs/cloud-cli.md): two hosts in two zones come up in one command, show as up, the
# printed aws settings work, and down leaves no process and no directory. Needs root
# (the hosts' cgroups), like the host tests; exits 77 (skipped) otherwise.
#
# usage: cli_up_down.sh NIMBUS WORKDIR
set -uo pipefail
NIMBUS=$1
WORK=$2
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (nimbusd's cgroups)"; exit 77; }
mkdir -p "$WORK"
STATE=$(mktemp -d "$WORK/state.XXXXXX")
rmdir "$STATE"  # `up` makes it
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
START=$SECONDS

# Whatever happens, nothing of this test keeps running.
cleanup() {
  "$NIMBUS" cloud down --purge --state-dir "$STATE" >/dev/null 2>&1
  for pid in $(pgrep -f -- "$STATE"); do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$STATE"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }

# run WANT_STATUS COMMAND...: runs it; $OUT is stdout, $ERR stderr.
run() {
  local want=$1
  shift
  OUT=$("$@" 2>"$WORK/stderr")
  local status=$?
  ERR=$(cat "$WORK/stderr")
  if [ "$status" != "$want" ]; then
    echo "--- stdout:"; echo "$OUT"; echo "--- stderr:"; echo "$ERR"
    fail "exit status $status, want $want: $*"
  fi
  echo "ok ($status): $*"
}
has() { grep -Eq -- "$2" <<<"$1" || { echo "$1"; fail "no /$2/ in the output above"; }; }

# Bad arguments: exit 2, one line naming the flag, nothing started.
run 2 "$NIMBUS" cloud up --state-dir "$STATE" --hosts 0
has "$ERR" "^nimbus: cloud up: --hosts 0 is out of range"
run 2 "$NIMBUS" cloud up --state-dir "$STATE" --zones a,a
has "$ERR" "given twice"
[ ! -e "$STATE" ] || fail "a refused up created $STATE"

run 0 "$NIMBUS" cloud up --state-dir "$STATE" --listen "127.0.0.1:$PORT" --hosts 2 --zones a,b
has "$OUT" "^Nimbus Cloud is up: region nimbus-west-1, zones nimbus-west-1a, nimbus-west-1b, 2 hosts$"
has "$OUT" "^  endpoint  http://127.0.0.1:$PORT$"
has "$OUT" "^  export AWS_ACCESS_KEY_ID=nimbus AWS_SECRET_ACCESS_KEY=nimbus AWS_DEFAULT_REGION=nimbus-west-1$"
has "$OUT" "^  aws --endpoint-url http://127.0.0.1:$PORT ec2 run-instances --image-id ami-[0-9a-f]+ --instance-type t3.micro$"
for f in cloud.json cloud.pid cloud.log join-token hosts/host-1/nimbusd.sock hosts/host-2/nimbusd.log; do
  [ -e "$STATE/$f" ] || fail "no $STATE/$f"
done
[ "$(stat -c %a "$STATE/hosts/host-1/api-token")" = 600 ] || fail "the host's token is not 0600"
# The control plane and two nimbusd, in sessions of their own (they outlive this shell).
[ "$(pgrep -c -f -- "$STATE")" = 3 ] || { pgrep -af -- "$STATE"; fail "want 3 processes"; }
for pid in $(pgrep -f -- "$STATE"); do
  [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] || fail "pid $pid is not a session leader"
done

# Up again: already up, nothing new started.
run 0 "$NIMBUS" cloud up --state-dir "$STATE" --listen "127.0.0.1:$PORT" --hosts 2 --zones a,b
has "$OUT" "^Nimbus Cloud is already up: region nimbus-west-1, endpoint http://127.0.0.1:$PORT"
[ "$(pgrep -c -f -- "$STATE")" = 3 ] || fail "a second up started processes"
# Another cloud on the same port: refused before it starts anything.
run 1 "$NIMBUS" cloud up --state-dir "$STATE-other" --listen "127.0.0.1:$PORT"
has "$ERR" "port $PORT is in use"
[ -z "$(pgrep -f -- "$STATE-other")" ] || fail "the refused up left processes"
rm -rf "$STATE-other"

run 0 "$NIMBUS" cloud hosts --state-dir "$STATE"
has "$OUT" "^ID +Zone +State +CPUs +Memory +Disk +Instances$"
has "$OUT" "^host-1 +nimbus-west-1a +up +0/[0-9]+ "
has "$OUT" "^host-2 +nimbus-west-1b +up +0/[0-9]+ "
[ "$(wc -l <<<"$OUT")" = 3 ] || fail "want 2 hosts"
run 0 "$NIMBUS" cloud hosts --state-dir "$STATE" --json
python3 -c '
import json, sys
hosts = json.loads(sys.argv[1])["hosts"]
assert sorted((h["id"], h["zone"], h["alive"]) for h in hosts) == [
    ("host-1", "nimbus-west-1a", True), ("host-2", "nimbus-west-1b", True)], hosts
assert all("api_token" not in h for h in hosts)
' "$OUT" || fail "hosts --json"

run 0 "$NIMBUS" cloud zones --state-dir "$STATE"
has "$OUT" "^Zone +Hosts +Up +Instances$"
has "$OUT" "^nimbus-west-1a +1 +1 +0$"
has "$OUT" "^nimbus-west-1b +1 +1 +0$"

run 0 "$NIMBUS" cloud instances --state-dir "$STATE"
[ -z "$OUT" ] || fail "instances printed '$OUT' for none"
has "$ERR" "^No instances"
run 0 "$NIMBUS" cloud instances --state-dir "$STATE" --json
[ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]))' "$OUT")" = "{'instances': []}" ] ||
  fail "instances --json: $OUT"

# One region (no --regions-file); `regions` and `--region auto` find the recorded endpoint.
run 0 "$NIMBUS" cloud regions --state-dir "$STATE" --latency --samples 2
has "$OUT" "^nimbus-west-1 +http://127.0.0.1:$PORT +[0-9.]+ ms .* 2/2$"
has "$OUT" "^  export AWS_DEFAULT_REGION=nimbus-west-1$"
run 0 "$NIMBUS" cloud zones --state-dir "$STATE" --region auto --samples 2
has "$OUT" "^nimbus-west-1a +1 +1 +0$"

# The views need the join token; a wrong endpoint is an error, not a hang.
run 1 "$NIMBUS" cloud hosts --state-dir "$WORK/no-such-cloud"
has "$ERR" "join token"
run 2 "$NIMBUS" cloud hosts --state-dir "$STATE" --endpoint "ftp://x"
CLOSED=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run 1 "$NIMBUS" cloud zones --state-dir "$STATE" --endpoint "http://127.0.0.1:$CLOSED"
has "$ERR" "cannot reach the control plane"

# The printed settings work with the real aws CLI (unsigned requests are not needed).
if command -v aws >/dev/null; then
  zones=$(AWS_ACCESS_KEY_ID=nimbus AWS_SECRET_ACCESS_KEY=nimbus AWS_DEFAULT_REGION=nimbus-west-1 \
    timeout 60 aws --endpoint-url "http://127.0.0.1:$PORT" ec2 describe-availability-zones \
    --query 'AvailabilityZones[].ZoneName' --output text) || fail "aws describe-availability-zones"
  [ "$(tr -s '\t ' '  ' <<<"$zones")" = "nimbus-west-1a nimbus-west-1b" ] || fail "aws zones: $zones"
  echo "ok: aws describe-availability-zones: $zones"
fi

run 0 "$NIMBUS" cloud down --state-dir "$STATE" --purge
has "$OUT" "^Control plane \(pid [0-9]+\): stopped$"
has "$OUT" "^host-1: 0 VMs stopped; nimbusd \(pid [0-9]+\): stopped$"
has "$OUT" "^host-2: 0 VMs stopped; nimbusd \(pid [0-9]+\): stopped$"
has "$OUT" "^Nimbus Cloud is down\.$"
[ -z "$(pgrep -f -- "$STATE")" ] || { pgrep -af -- "$STATE"; fail "processes left after down"; }
[ ! -e "$STATE" ] || fail "$STATE left after down --purge"
run 0 "$NIMBUS" cloud down --state-dir "$STATE"
has "$OUT" "^Nimbus Cloud is not up"

ELAPSED=$((SECONDS - START))
[ "$ELAPSED" -lt 60 ] || fail "took $ELAPSED s (budget 60 s)"
echo "PASS in $ELAPSED s"
