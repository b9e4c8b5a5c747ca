#!/bin/sh
# Nightly dump of campus-pay's database; keeps 14 days. Install as
# /usr/local/bin/campus-pay-backup and run from root's crontab (see README.md).
set -eu
DIR=/var/backups/campus-pay
DB=${CAMPUSPAY_BACKUP_DB:-campus_pay}
install -d -m 0700 "$DIR"
STAMP=$(date +%Y%m%d)
sudo -u postgres pg_dump -Fc "$DB" > "$DIR/$DB-$STAMP.dump.tmp"
mv "$DIR/$DB-$STAMP.dump.tmp" "$DIR/$DB-$STAMP.dump"
find "$DIR" -name "$DB-*.dump" -mtime +14 -delete
