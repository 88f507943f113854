#!/usr/bin/env bash
# direct-ab.sh: CPU of `pitr backup` with backup_method direct against stream,
# interleaved, on one pgbench cluster and a local-directory repository.
# Client: /usr/bin/time -v (user+sys, max RSS). Server: /proc/PID/stat of the
# postmaster (cutime+cstime: the backup's backend or walsender, reaped when it
# exits) plus utime+stime of its live children (checkpointer, archiver...);
# autovacuum is off so no other child comes and goes.
# Run as root: SCALE=20 ROUNDS=3 [CHECKSUMS=1] bash bench/direct-ab.sh
set -euo pipefail
W=/var/tmp/pitr-direct-bench
SCALE=${SCALE:-20}
ROUNDS=${ROUNDS:-3}
PGBIN=/usr/lib/postgresql/15/bin
PITR=$W/pitr
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
(cd "$(dirname "${BASH_SOURCE[0]}")/.." && go build -o "$PITR" ./cmd/pitr)
install -d -o postgres -m 0750 "$W/repo"; install -d -o postgres "$W/log"
PORT=${PORT:-55432}
install -d -o postgres -m 0700 "$W/src"; runuser -u postgres -- "$PGBIN/initdb" ${CHECKSUMS:+-k} -D "$W/src" -U postgres -A trust >/dev/null
"$PITR" keygen --output "$W/id.txt" >/dev/null 2>&1
export PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$W/id.txt" | head -1) PITR_REPO=file://$W/repo PITR_LOG_LEVEL=warn
cat >>"$W/src/postgresql.conf" <<EOC
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
archive_mode = on
archive_command = '$PITR wal-push %p'
autovacuum = off
EOC
runuser -u postgres -- env PITR_AGE_RECIPIENTS=$PITR_AGE_RECIPIENTS PITR_REPO=$PITR_REPO "$PGBIN/pg_ctl" -D "$W/src" -l "$W/log/src.log" -w start >/dev/null
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/src" -m fast -w stop >/dev/null' EXIT
runuser -u postgres -- "$PGBIN/pgbench" -h /tmp -p $PORT -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql="runuser -u postgres -- $PGBIN/psql -h /tmp -p $PORT -U postgres -qAt"
$psql -c CHECKPOINT
echo "cluster: $(du -sb --exclude=pg_wal $W/src | cut -f1) bytes"
export PITR_PG_DSN="host=127.0.0.1 port=$PORT user=postgres"
PM=$(head -1 "$W/src/postmaster.pid")
tck=$(getconf CLK_TCK)
# server CPU ticks: postmaster's reaped children + every live child (own time only)
srvticks() {
	local t=0 f
	read -r -a f < <(sed 's/^.*) //' /proc/$PM/stat)
	t=$(( f[11] + f[12] + f[13] + f[14] ))  # utime stime cutime cstime of postmaster
	for c in $(pgrep -P "$PM"); do
		read -r -a f < <(sed 's/^.*) //' /proc/$c/stat) || continue
		t=$(( t + f[11] + f[12] ))
	done
	echo $t
}
one() {
	local m=$1 r=$2
	sync; sleep 2
	local s0; s0=$(srvticks)
	PITR_BACKUP_METHOD=$m /usr/bin/time -v -o "$W/time-$m-$r" "$PITR" backup >/dev/null 2>"$W/log-$m-$r"
	sleep 0.5
	local s1; s1=$(srvticks)
	local u s e rss
	u=$(awk -F': ' '/User time/{print $2}' "$W/time-$m-$r")
	s=$(awk -F': ' '/System time/{print $2}' "$W/time-$m-$r")
	e=$(awk -F': ' '/Elapsed/{print $2}' "$W/time-$m-$r")
	rss=$(awk -F': ' '/Maximum resident/{print $2}' "$W/time-$m-$r")
	printf '%s r%d wall %s client user %s sys %s (%.2f CPU-s) server %.2f CPU-s rss %d MiB\n' "$m" "$r" "$e" "$u" "$s" "$(echo "$u + $s" | bc)" "$(echo "($s1 - $s0) / $tck" | bc -l)" $((rss / 1024))
}
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then one stream $r; one direct $r; else one direct $r; one stream $r; fi
done
