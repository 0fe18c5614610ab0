#!/usr/bin/env bash
# Builds girder's integration-test image (PostgreSQL 15 + Redis on Debian bookworm) without a
# registry: debootstrap a minbase root file system from the apt mirror this machine is configured
# with, add the entrypoint, and `docker import` it. Does nothing when the image already exists.
#
#   internal/testenv/image/build.sh [IMAGE]      (default girder-testenv:1, or $GIRDER_TEST_IMAGE)
#
# Needs root (debootstrap) and a Docker engine. Where images can be pulled, the Dockerfile beside
# this script builds the same image: docker build -t girder-testenv:1 internal/testenv/image
set -euo pipefail

image=${1:-${GIRDER_TEST_IMAGE:-girder-testenv:1}}
here=$(cd "$(dirname "$0")" && pwd)

if docker image inspect "$image" >/dev/null 2>&1; then
	echo "testenv image: $image exists, not rebuilding"
	exit 0
fi

# mirror prints the first Debian mirror of the apt configuration that serves bookworm.
mirror() {
	local f
	for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			/^[ \t]*$/ { if (uri != "" && suite ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suite = ""; next }
			/^URIs:/   { uri = $2 }
			/^Suites:/ { suite = ""; for (i = 2; i <= NF; i++) suite = suite " " $i; suite = suite " " }
			END        { if (uri != "" && suite ~ /(^| )bookworm( |$)/) print uri }
		' "$f" | head -n 1
	done
	if [ -f /etc/apt/sources.list ]; then
		awk '$1 == "deb" && $3 == "bookworm" { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list
	fi
}

m=$(mirror | head -n 1)
if [ -z "$m" ]; then
	echo "testenv image: no Debian bookworm mirror found in /etc/apt/sources.list{,.d}" >&2
	exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	echo "testenv image: installing debootstrap"
	apt-get update -qq
	apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /tmp/girder-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
start=$(date +%s)
echo "testenv image: debootstrap bookworm from $m"
debootstrap --variant=minbase --include=postgresql-15,redis-server bookworm "$rootfs" "$m" >"$work/debootstrap.log" 2>&1 || {
	tail -n 40 "$work/debootstrap.log" >&2
	exit 1
}

# Prune what a test container never reads.
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
	"$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
	"$rootfs"/var/lib/postgresql/15 "$rootfs"/etc/postgresql/15/main
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C*' -exec rm -rf {} +
install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/bin/girder-entrypoint"

tar -C "$rootfs" -c . | docker import \
	--change 'ENTRYPOINT ["/usr/local/bin/girder-entrypoint"]' \
	--change 'CMD ["postgres"]' \
	--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV PGDATA=/var/lib/postgresql/data' \
	--change 'EXPOSE 5432 6379' \
	- "$image" >/dev/null
echo "testenv image: built $image in $(($(date +%s) - start))s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1048576}'))"
