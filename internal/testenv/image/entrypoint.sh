#!/bin/sh
# Entrypoint of girder's test image (PostgreSQL 15 and Redis in one Debian image).
#
#   entrypoint.sh redis     Redis on 0.0.0.0:6379, protected mode and persistence off.
#   entrypoint.sh postgres  PostgreSQL primary on 0.0.0.0:5432. The first start initialises
#                           $PGDATA with user postgres / $POSTGRES_PASSWORD and allows
#                           password logins and replication connections from anywhere.
#   entrypoint.sh replica   A streaming replica of $PRIMARY_HOST:${PRIMARY_PORT:-5432}: the first
#                           start clones the primary with pg_basebackup; later starts resume.
#
# PostgreSQL always runs as the postgres user. Stop the container with SIGINT (the image's
# STOPSIGNAL; testenv sets it on each container) so PostgreSQL does a fast shutdown.
set -eu

PGBIN=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-girder}
export PGDATA

as_postgres() {
	setpriv --reuid=postgres --regid=postgres --init-groups "$@"
}

prepare_dirs() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
}

run_postgres() {
	exec setpriv --reuid=postgres --regid=postgres --init-groups \
		"$PGBIN/postgres" -D "$PGDATA" \
		-c listen_addresses='*' \
		-c unix_socket_directories=/var/run/postgresql \
		-c fsync=off -c full_page_writes=off \
		-c wal_level=replica -c max_wal_senders=16 -c max_replication_slots=16 \
		-c wal_keep_size=256MB -c hot_standby=on -c hot_standby_feedback=on \
		"$@"
}

case "${1:-}" in
redis)
	shift
	exec redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no --port 6379 "$@"
	;;
postgres)
	shift
	prepare_dirs
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		pwfile=$(mktemp)
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
		chown postgres "$pwfile"
		as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
			--auth-local=trust --auth-host=scram-sha-256 >/dev/null
		rm -f "$pwfile"
		{
			echo "host all all all scram-sha-256"
			echo "host replication all all scram-sha-256"
		} >>"$PGDATA/pg_hba.conf"
	fi
	run_postgres "$@"
	;;
replica)
	shift
	: "${PRIMARY_HOST:?replica mode needs PRIMARY_HOST}"
	prepare_dirs
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		# The primary may still be starting: retry the base backup for up to a minute.
		i=0
		until PGPASSWORD="$POSTGRES_PASSWORD" as_postgres "$PGBIN/pg_basebackup" \
			-h "$PRIMARY_HOST" -p "${PRIMARY_PORT:-5432}" -U postgres \
			-D "$PGDATA" -R -X stream -c fast >/dev/null; do
			i=$((i + 1))
			[ "$i" -lt 60 ] || { echo "replica: pg_basebackup from $PRIMARY_HOST failed" >&2; exit 1; }
			rm -rf "${PGDATA:?}"/*
			sleep 1
		done
		# pg_basebackup -R writes the password into primary_conninfo; keep it there.
	fi
	run_postgres "$@"
	;;
*)
	exec "$@"
	;;
esac
