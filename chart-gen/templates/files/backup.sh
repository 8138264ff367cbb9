#!/bin/sh
# DataJump MySQL backup: a consistent, compressed logical dump of the application databases plus a
# JSON manifest, written under temporary names and renamed only when complete, then retention
# pruning and an optional upload to an S3-compatible bucket. Prints the backup name on stdout;
# progress and errors go to stderr. Exit codes: 0 ok, 1 backup failed, 2 bad configuration.
#
# Environment (set by the chart's backup CronJob):
#   MYSQL_HOST, MYSQL_PORT (3306), MYSQL_USER, MYSQL_PASSWORD   server and credentials
#   BACKUP_DIR                  where <name>.sql.gz and <name>.json are written
#   BACKUP_KEEP (7)             how many backups with BACKUP_PREFIX to keep
#   BACKUP_PREFIX (datajump)    backup name is <prefix>-<UTC yyyymmddTHHMMSSZ>
#   BACKUP_DATABASES            space-separated databases; default: every application database
#   BACKUP_INCLUDE_SYSTEM       true: also dump `mysql` and `sys` (default false)
#   BACKUP_GZIP_LEVEL (6)       gzip compression level 1-9
#   S3_BUCKET                   when set, upload both files to S3_ENDPOINT/S3_BUCKET/S3_PREFIX<file>
#   S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (us-east-1), S3_PREFIX ("")
#   MYSQL_USER_FILE, MYSQL_PASSWORD_FILE, S3_ACCESS_KEY_FILE, S3_SECRET_KEY_FILE
#                               files holding those values instead (the chart mounts its Secrets)
#
# The password never appears on a command line (ps-visible): clients read it from a mode-600
# option file in a private temporary directory under TMPDIR, removed on exit.
set -eu
umask 077

log() { printf 'backup: %s\n' "$*" >&2; }
die() { printf 'backup: error: %s\n' "$*" >&2; exit 1; }
config_error() { printf 'backup: configuration error: %s\n' "$*" >&2; exit 2; }

# Shared functions: credentials from files, manifest checks, client option file, connection
# errors.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"
read_credential_files MYSQL_USER MYSQL_PASSWORD S3_ACCESS_KEY S3_SECRET_KEY

# --- settings -----------------------------------------------------------------------------------
[ -n "${MYSQL_HOST:-}" ] || config_error "MYSQL_HOST is not set (expected the MySQL server host)"
[ -n "${MYSQL_USER:-}" ] || config_error "MYSQL_USER is not set (expected the MySQL user name)"
[ -n "${BACKUP_DIR:-}" ] || config_error "BACKUP_DIR is not set (expected a writable directory)"
[ "${MYSQL_PASSWORD+set}" = set ] || config_error "MYSQL_PASSWORD is not set"
port=${MYSQL_PORT:-3306}
keep=${BACKUP_KEEP:-7}
prefix=${BACKUP_PREFIX:-datajump}
level=${BACKUP_GZIP_LEVEL:-6}
include_system=${BACKUP_INCLUDE_SYSTEM:-false}
dir=$BACKUP_DIR

case $port in '' | *[!0-9]*) config_error "MYSQL_PORT='$port' is not a port number" ;; esac
case $keep in '' | *[!0-9]* | 0) config_error "BACKUP_KEEP='$keep' must be a whole number >= 1" ;; esac
case $prefix in '' | *[!A-Za-z0-9._-]*)
  config_error "BACKUP_PREFIX='$prefix' may only contain letters, digits, '.', '_' and '-'" ;;
esac
case $level in [1-9]) ;; *) config_error "BACKUP_GZIP_LEVEL='$level' must be 1-9" ;; esac
case $include_system in true | false) ;; *)
  config_error "BACKUP_INCLUDE_SYSTEM='$include_system' must be true or false" ;;
esac
[ -d "$dir" ] || config_error "BACKUP_DIR='$dir' is not a directory"
[ -w "$dir" ] || config_error "BACKUP_DIR='$dir' is not writable"
# Word splitting is used for database lists; globbing never is (except where re-enabled).
set -f

if command -v mariadb-dump >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; then
  dump_cmd=mariadb-dump client_cmd=mariadb
elif command -v mysqldump >/dev/null 2>&1 && command -v mysql >/dev/null 2>&1; then
  dump_cmd=mysqldump client_cmd=mysql
else
  die "neither mariadb-dump/mariadb nor mysqldump/mysql is installed in this image"
fi
command -v gzip >/dev/null 2>&1 || die "gzip is not installed in this image"

# --- cleanup: nothing partial survives under a final name ------------------------------------
work=
partial_archive=
partial_manifest=
final_archive=
committed=false
cleanup() {
  [ -n "$partial_archive" ] && rm -f "$partial_archive"
  [ -n "$partial_manifest" ] && rm -f "$partial_manifest"
  # The manifest is the commit marker: an archive renamed without its manifest is withdrawn.
  if [ "$committed" = false ] && [ -n "$final_archive" ]; then rm -f "$final_archive"; fi
  [ -n "$work" ] && rm -rf "$work"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/datajump-backup.XXXXXX") ||
  die "cannot create a temporary directory under ${TMPDIR:-/tmp} (set TMPDIR to a writable path)"

cnf=$work/client.cnf
write_client_options "$cnf"

# --- what to back up ------------------------------------------------------------------------
started=$(date +%s)
server_version=$(client -e 'SELECT VERSION()' 2>"$work/err") || connect_failure "$work/err" die
# Quotes and backslashes never occur in real version strings; dropping them keeps the JSON valid.
server_version=$(printf '%s' "$server_version" | tr -d '\\"' | head -n 1)

existing=$(client -e 'SHOW DATABASES' 2>"$work/err") || connect_failure "$work/err" die
if [ -n "${BACKUP_DATABASES:-}" ]; then
  wanted=$BACKUP_DATABASES
  for db in $wanted; do
    printf '%s\n' "$existing" | grep -qxF -- "$db" ||
      die "BACKUP_DATABASES names '$db' but the server at $MYSQL_HOST:$port has no such database"
  done
else
  wanted=
  # One name per line: split on newlines only, so a name with a space is reported whole.
  saved_ifs=$IFS
  IFS='
'
  for db in $existing; do
    case $db in
      information_schema | performance_schema) continue ;;
      mysql | sys) [ "$include_system" = true ] || continue ;;
    esac
    case $db in *[!A-Za-z0-9_\$-]*)
      die "database name '$db' has characters this script does not support (letters, digits, _, \$ and - only); list the databases to back up in BACKUP_DATABASES" ;;
    esac
    wanted="$wanted $db"
  done
  IFS=$saved_ifs
fi
databases=
for db in $wanted; do
  case $db in *[!A-Za-z0-9_\$-]*)
    die "database name '$db' has characters this script does not support (letters, digits, _, \$ and - only); list the databases to back up in BACKUP_DATABASES" ;;
  esac
  databases="$databases $db"
done
# shellcheck disable=SC2086 # one validated name per line
databases=$(printf '%s\n' $databases | sort -u | tr '\n' ' ' | sed 's/ *$//')
[ -n "$databases" ] || die "nothing to back up: the server at $MYSQL_HOST:$port has no application databases"

# --- name: <prefix>-<UTC timestamp>, never reusing an existing one -----------------------------
attempt=0
while :; do
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  name=$prefix-$stamp
  [ -e "$dir/$name.json" ] || [ -e "$dir/$name.sql.gz" ] || break
  attempt=$((attempt + 1))
  [ "$attempt" -lt 3 ] || die "a backup named $name already exists in $dir"
  sleep 1
done
created=$(printf '%s' "$stamp" |
  sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)Z$/\1-\2-\3T\4:\5:\6Z/')
partial_archive=$dir/.$name.sql.gz.partial
partial_manifest=$dir/.$name.json.partial
log "dumping $databases from $MYSQL_HOST:$port ($server_version) as $name"

# --- dump | gzip, counting uncompressed bytes on the way ----------------------------------------
# POSIX sh has no pipefail: each stage's exit status is written to a file and checked.
mkfifo "$work/count.fifo"
wc -c <"$work/count.fifo" >"$work/count" &
count_pid=$!
# shellcheck disable=SC2086 # validated database names, split into arguments (globbing is off)
{
  "$dump_cmd" --defaults-extra-file="$cnf" --single-transaction --quick --routines --events \
    --triggers --hex-blob --no-tablespaces --default-character-set=utf8mb4 \
    --max-allowed-packet=1G --databases $databases 2>"$work/dump.err"
  echo $? >"$work/dump.rc"
} | tee "$work/count.fifo" | gzip -c "-$level" >"$partial_archive" && gzip_rc=0 || gzip_rc=$?
wait "$count_pid" || die "counting the dump size failed"
if [ "$gzip_rc" -ne 0 ]; then
  die "writing $partial_archive failed (gzip exit $gzip_rc) - is $dir full?"
fi
dump_rc=$(cat "$work/dump.rc" 2>/dev/null || echo missing)
if [ "$dump_rc" != 0 ]; then
  grep -qiE 'access denied|connect' "$work/dump.err" && connect_failure "$work/dump.err" die
  die "$dump_cmd failed (exit $dump_rc): $(tr '\n' ' ' <"$work/dump.err")"
fi
[ -s "$work/dump.err" ] && log "$dump_cmd warnings: $(tr '\n' ' ' <"$work/dump.err")"

uncompressed=$(tr -d ' ' <"$work/count")
size=$(wc -c <"$partial_archive" | tr -d ' ')
sha256=$(sha256_of "$partial_archive")
[ "${#sha256}" -eq 64 ] || die "could not compute the sha256 of $partial_archive"

db_json=
for db in $databases; do db_json="$db_json${db_json:+, }\"$db\""; done
cat >"$partial_manifest" <<EOF || die "writing $partial_manifest failed - is $dir full?"
{
  "formatVersion": 1,
  "name": "$name",
  "created": "$created",
  "serverVersion": "$server_version",
  "databases": [$db_json],
  "compression": "gzip",
  "size": $size,
  "uncompressedSize": $uncompressed,
  "sha256": "$sha256"
}
EOF

# --- commit: archive first, manifest last (the manifest's presence means "complete") ------------
final_archive=$dir/$name.sql.gz
mv -f "$partial_archive" "$final_archive" || die "renaming the archive to $final_archive failed"
mv -f "$partial_manifest" "$dir/$name.json" || die "renaming the manifest to $dir/$name.json failed"
committed=true
elapsed=$(($(date +%s) - started))
log "wrote $name: $(echo "$databases" | wc -w | tr -d ' ') databases, $uncompressed bytes dumped, $size bytes compressed, ${elapsed}s"

# --- optional upload to an S3-compatible bucket (the platform's MinIO) ---------------------------
config_escape() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
upload() {
  file=$1
  key=${S3_PREFIX:-}$(basename "$file")
  # Credentials go through a curl config file, not the command line.
  printf 'user = "%s:%s"\n' "$(config_escape "$S3_ACCESS_KEY")" "$(config_escape "$S3_SECRET_KEY")" \
    >"$work/curl.cfg"
  curl --config "$work/curl.cfg" --fail --silent --show-error --retry 3 \
    --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --upload-file "$file" "${S3_ENDPOINT%/}/$S3_BUCKET/$key" >/dev/null 2>"$work/curl.err" ||
    die "backup $name is complete in $dir but uploading $key to bucket $S3_BUCKET failed: $(tr '\n' ' ' <"$work/curl.err")"
}
if [ -n "${S3_BUCKET:-}" ]; then
  for var in S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY; do
    eval "value=\${$var:-}"
    # shellcheck disable=SC2154 # assigned by the eval above
    [ -n "$value" ] || config_error "$var must be set when S3_BUCKET is set"
  done
  command -v curl >/dev/null 2>&1 || die "S3_BUCKET is set but curl is not installed in this image"
  upload "$final_archive"
  upload "$dir/$name.json"
  log "uploaded $name to bucket $S3_BUCKET"
fi

# --- retention: keep the newest BACKUP_KEEP backups with this prefix ----------------------------
set +f
for manifest in "$dir/$prefix"-*.json; do
  base=${manifest##*/}
  case $base in "$prefix"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.json)
    printf '%s\n' "${base%.json}" ;;
  esac
done | sort -r | tail -n "+$((keep + 1))" >"$work/expired"
set -f
while IFS= read -r old; do
  # Manifest first, so a half-deleted backup is never listed as complete.
  rm -f "$dir/$old.json" "$dir/$old.sql.gz"
  log "retention: removed $old (keeping $keep)"
done <"$work/expired"
# Partial files left by a killed run are never renamed; drop them once they are a day old.
find "$dir" -maxdepth 1 -name ".$prefix-*.partial" -mtime +0 -exec rm -f {} + 2>/dev/null || true

printf '%s\n' "$name"
