#!/bin/sh
# Runs once when the postgres image initialises a new data directory.
set -e
cat >> "$PGDATA/postgresql.conf" <<CONF
wal_level = replica
archive_mode = on
archive_command = 'pitr wal-push %p'
archive_timeout = 60
CONF
# The pitr-daemon service streams WAL and takes base backups over replication
# connections from its own container.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
