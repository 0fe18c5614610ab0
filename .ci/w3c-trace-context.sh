#!/usr/bin/env bash
# Runs the official W3C Trace Context suite at Level 2, strict, against tracing/internal/w3cservice
# twice: girder's own Inject/Extract, and the OpenTelemetry API on girder's provider. Fails unless
# every run passes all 41 tests. Installs python3-aiohttp when it is missing (as root).
#
#   W3C_SUITE   the suite's folder (holding test/test.py); by default the first of
#               ../shared/conformance/w3c-trace-context beside the clone, one level further up, and
#               /work/shared/conformance/w3c-trace-context (where the workplace keeps it)
set -euo pipefail
cd "$(dirname "$0")/.."

suite=${W3C_SUITE:-}
if [ -z "$suite" ]; then
	for d in ../shared/conformance/w3c-trace-context ../../shared/conformance/w3c-trace-context /work/shared/conformance/w3c-trace-context; do
		if [ -f "$d/test/test.py" ]; then suite=$d; break; fi
	done
fi
if [ -z "$suite" ] || [ ! -f "$suite/test/test.py" ]; then
	echo "w3c: the W3C Trace Context suite is not there; set W3C_SUITE to its folder" >&2
	exit 1
fi
suite=$(cd "$suite" && pwd)

if ! /usr/bin/python3 -c 'import aiohttp' 2>/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "w3c: python3-aiohttp is missing and installing it needs root" >&2
		exit 1
	fi
	apt-get update -qq
	apt-get install -y -qq python3-aiohttp >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/w3cservice" ./tracing/internal/w3cservice
cp -r "$suite/test" "$work/suite" # the harness may write beside itself

port=7777
status=0
for api in girder otel; do
	"$work/w3cservice" -api "$api" >"$work/$api.addr" 2>"$work/$api.log" &
	pids+=($!)
	for _ in $(seq 50); do
		[ -s "$work/$api.addr" ] && break
		sleep 0.1
	done
	addr=$(head -n 1 "$work/$api.addr")
	port=$((port + 1))
	if ! (cd "$work/suite" && SPEC_LEVEL=2 STRICT_LEVEL=2 HARNESS_PORT=$port \
		/usr/bin/python3 test.py "http://$addr/test") >"$work/$api.out" 2>&1; then
		:
	fi
	ran=$(sed -n 's/^Ran \([0-9]*\) tests.*/\1/p' "$work/$api.out")
	failed=$(grep -cE '^(FAIL|ERROR):' "$work/$api.out" || true)
	passed=$((${ran:-0} - failed))
	printf 'w3c trace context, %s API: %d of %s passed\n' "$api" "$passed" "${ran:-?}"
	if [ "${ran:-0}" -ne 41 ] || [ "$failed" -ne 0 ]; then
		cat "$work/$api.out" >&2
		status=1
	fi
done
exit $status
