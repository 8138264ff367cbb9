#!/bin/sh
# DataJump MySQL restore: checks a backup written by backup.sh before it touches the server — the
# manifest is well formed and names this backup, the archive's size and sha256 match it, the
# archive decompresses completely, the dump ends with mysqldump's completion line and creates
# exactly the databases the manifest lists — and refuses with a clear message otherwise. Then it
# replaces each application database in the backup (drop, then load the dump) and prints a summary
# on stdout. Databases not in the backup are left alone. Exit codes: 0 restored, 1 refused or
# failed, 2 bad configuration.
#
# Environment (set by the chart's restore Job): BACKUP_NAME (required), BACKUP_DIR, MYSQL_HOST,
# MYSQL_PORT (3306), MYSQL_USER, MYSQL_PASSWORD. The password never appears on a command line: the
# client reads it from a mode-600 option file in a private temporary directory under TMPDIR.
set -eu
umask 077

log() { printf 'restore: %s\n' "$*" >&2; }
die() { printf 'restore: error: %s\n' "$*" >&2; exit 1; }
refuse() { printf 'restore: refused: %s; the server was not touched\n' "$*" >&2; exit 1; }
config_error() { printf 'restore: configuration error: %s\n' "$*" >&2; exit 2; }

# --- settings -----------------------------------------------------------------------------------
[ -n "${BACKUP_NAME:-}" ] || config_error "BACKUP_NAME is not set (expected a name printed by backup.sh or listed by list-backups.sh)"
[ -n "${BACKUP_DIR:-}" ] || config_error "BACKUP_DIR is not set (expected the backup directory)"
[ -n "${MYSQL_HOST:-}" ] || config_error "MYSQL_HOST is not set (expected the MySQL server host)"
[ -n "${MYSQL_USER:-}" ] || config_error "MYSQL_USER is not set (expected the MySQL user name)"
[ "${MYSQL_PASSWORD+set}" = set ] || config_error "MYSQL_PASSWORD is not set"
name=$BACKUP_NAME
dir=$BACKUP_DIR
port=${MYSQL_PORT:-3306}
case $name in *[!A-Za-z0-9._-]* | .*)
  config_error "BACKUP_NAME='$name' is not a backup name (letters, digits, '.', '_' and '-')" ;;
esac
case $port in '' | *[!0-9]*) config_error "MYSQL_PORT='$port' is not a port number" ;; esac
[ -d "$dir" ] || config_error "BACKUP_DIR='$dir' is not a directory"
manifest=$dir/$name.json
archive=$dir/$name.sql.gz
set -f

if command -v mariadb >/dev/null 2>&1; then client_cmd=mariadb
elif command -v mysql >/dev/null 2>&1; then client_cmd=mysql
else die "neither the mariadb nor the mysql client is installed in this image"
fi
command -v gzip >/dev/null 2>&1 || die "gzip is not installed in this image"
command -v awk >/dev/null 2>&1 || die "awk is not installed in this image"

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d "${TMPDIR:-/tmp}/datajump-restore.XXXXXX") ||
  die "cannot create a temporary directory under ${TMPDIR:-/tmp} (set TMPDIR to a writable path)"

# --- manifest reading (keep identical in restore.sh and list-backups.sh) ---------------------
# backup.sh writes one field per line; this reads exactly that shape into m_* variables and
# returns 1 (with the problem in m_problem) when a field is missing, repeated or malformed.
manifest_string() {
  sed -n "s/^  \"$1\": \"\\([^\"\\\\]*\\)\",\\{0,1\\}\$/\\1/p" "$m_file"
}
manifest_number() {
  sed -n "s/^  \"$1\": \\([0-9][0-9]*\\),\\{0,1\\}\$/\\1/p" "$m_file"
}
read_manifest() {
  m_file=$1
  m_problem=
  m_format=$(manifest_number formatVersion)
  m_name=$(manifest_string name)
  m_created=$(manifest_string created)
  m_server=$(manifest_string serverVersion)
  m_size=$(manifest_number size)
  m_uncompressed=$(manifest_number uncompressedSize)
  m_sha256=$(manifest_string sha256)
  m_databases=$(sed -n 's/^  "databases": \[\(.*\)\],\{0,1\}$/\1/p' "$m_file" | tr -d '",')
  [ "$m_format" = 1 ] || { m_problem="formatVersion is '$m_format', expected 1"; return 1; }
  case $m_name in '' | *[!A-Za-z0-9._-]*) m_problem="name is missing or malformed"; return 1 ;; esac
  case $m_created in
    [0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z) ;;
    *) m_problem="created is missing or not a UTC timestamp"; return 1 ;;
  esac
  case $m_size in '' | *[!0-9]*) m_problem="size is missing or not a number"; return 1 ;; esac
  case $m_uncompressed in '' | *[!0-9]*) m_problem="uncompressedSize is missing or not a number"; return 1 ;; esac
  case $m_sha256 in *[!0-9a-f]* | '') m_problem="sha256 is missing or not lowercase hex"; return 1 ;; esac
  [ "${#m_sha256}" -eq 64 ] || { m_problem="sha256 is not 64 hex digits"; return 1; }
  [ -n "$m_databases" ] || { m_problem="databases is missing or empty"; return 1; }
  case $m_databases in *[!A-Za-z0-9_\$\ -]*) m_problem="databases holds a malformed name"; return 1 ;; esac
  return 0
}
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum <"$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 <"$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 <"$1" | sed 's/^.*= *//'
  else die "no sha256 tool (sha256sum, shasum or openssl) in this image"
  fi
}
# Compares the archive with the manifest read last; sets m_problem and returns 1 on a mismatch.
check_archive() {
  actual_size=$(wc -c <"$1" | tr -d ' ')
  [ "$actual_size" = "$m_size" ] ||
    { m_problem="archive is $actual_size bytes, manifest says $m_size"; return 1; }
  actual_sha=$(sha256_of "$1")
  [ "$actual_sha" = "$m_sha256" ] ||
    { m_problem="archive sha256 is $actual_sha, manifest says $m_sha256"; return 1; }
  return 0
}
# Decompresses the archive once (the same checks restore.sh applies before touching a server):
# gzip must succeed, the dump must end with mysqldump's completion line, and the databases it
# creates must be exactly the manifest's. Sets m_problem and returns 1 otherwise. gzip's exit
# status travels as a last line through the pipe because POSIX sh has no pipefail.
check_dump() {
  scan=$(
    {
      gzip -dc "$1" 2>/dev/null
      printf '\ngzip-exit %s\n' "$?"
    } | awk '
      /^CREATE DATABASE / { n = split($0, part, "`"); if (n >= 3) print "db " part[2] }
      /^gzip-exit / { status = $2; next }
      $0 != "" { last = $0 }
      END { print "status " status; print "last " last }
    '
  ) || { m_problem="reading the dump failed"; return 1; }
  [ "$(printf '%s\n' "$scan" | sed -n 's/^status //p')" = 0 ] ||
    { m_problem="archive does not decompress completely"; return 1; }
  printf '%s\n' "$scan" | grep -q '^last -- Dump completed' ||
    { m_problem="dump is truncated: it lacks mysqldump's final 'Dump completed' line"; return 1; }
  in_dump=$(printf '%s\n' "$scan" | sed -n 's/^db //p' | sort | tr '\n' ' ' | sed 's/ *$//')
  # shellcheck disable=SC2086 # validated names, one per line
  in_manifest=$(printf '%s\n' $m_databases | sort | tr '\n' ' ' | sed 's/ *$//')
  [ "$in_dump" = "$in_manifest" ] ||
    { m_problem="manifest lists databases '$in_manifest' but the dump creates '$in_dump'"; return 1; }
  return 0
}
# --- end of manifest reading --------------------------------------------------------------------

# --- verify everything before touching the server -----------------------------------------------
[ -f "$manifest" ] || refuse "backup $name not found: $manifest does not exist"
[ -f "$archive" ] || refuse "backup $name is incomplete: its archive $archive does not exist"
read_manifest "$manifest" || refuse "manifest $manifest is invalid: $m_problem"
[ "$m_name" = "$name" ] || refuse "manifest $manifest names backup '$m_name', not '$name'"
check_archive "$archive" || refuse "backup $name does not match its manifest: $m_problem"
log "archive matches its manifest (sha256 $m_sha256); checking that it decompresses completely"

check_dump "$archive" || refuse "backup $name is unusable: $m_problem"

# --- connect --------------------------------------------------------------------------------------
option_value() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g')"; }
cnf=$work/client.cnf
{
  echo '[client]'
  echo "host=$(option_value "$MYSQL_HOST")"
  echo "port=$port"
  echo "user=$(option_value "$MYSQL_USER")"
  echo "password=$(option_value "$MYSQL_PASSWORD")"
  echo 'protocol=TCP'
} >"$cnf"
client() { "$client_cmd" --defaults-extra-file="$cnf" --batch --skip-column-names "$@"; }
connect_failure() {
  said=$(tr '\n' ' ' <"$1" | sed 's/ *$//')
  case $(printf '%s' "$said" | tr '[:upper:]' '[:lower:]') in
    *"access denied"*)
      refuse "authentication failed for user '$MYSQL_USER' at $MYSQL_HOST:$port - check MYSQL_USER and MYSQL_PASSWORD (server said: $said)" ;;
    *"can't connect"* | *"unknown server host"* | *"unknown mysql server host"* | *"lost connection"* | *"connection refused"*)
      refuse "cannot reach the MySQL server at $MYSQL_HOST:$port - is it running and reachable? (client said: $said)" ;;
    *) refuse "cannot query the MySQL server at $MYSQL_HOST:$port: $said" ;;
  esac
}
server_version=$(client -e 'SELECT VERSION()' 2>"$work/err") || connect_failure "$work/err"

# --- restore: drop each application database of the backup, then load the dump -----------------
log "backup $name verified; restoring $in_manifest into $MYSQL_HOST:$port ($server_version)"
started=$(date +%s)
{
  for db in $m_databases; do
    # shellcheck disable=SC2016 # the backquotes are SQL identifier quotes
    case $db in mysql | sys) ;; *) printf 'DROP DATABASE IF EXISTS `%s`;\n' "$db" ;; esac
  done
  gzip -dc "$archive"
  echo $? >"$work/load-gzip.rc"
  # A restored `mysql` schema holds users and grants; make the server use them now.
  case " $m_databases " in *" mysql "*) echo 'FLUSH PRIVILEGES;' ;; esac
} | "$client_cmd" --defaults-extra-file="$cnf" --batch --binary-mode \
  --default-character-set=utf8mb4 --max-allowed-packet=1G >/dev/null 2>"$work/load.err" &&
  load_rc=0 || load_rc=$?
if [ "$load_rc" -ne 0 ] || [ "$(cat "$work/load-gzip.rc" 2>/dev/null)" != 0 ]; then
  die "loading backup $name into $MYSQL_HOST:$port failed; databases $in_manifest may be partly restored - fix the cause and run the restore again ($client_cmd said: $(tr '\n' ' ' <"$work/load.err"))"
fi
elapsed=$(($(date +%s) - started))

# --- summary --------------------------------------------------------------------------------------
in_list=
for db in $m_databases; do in_list="$in_list${in_list:+,}'$db'"; done
tables=$(client -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ($in_list)" 2>"$work/err") ||
  connect_failure "$work/err"
rate=
[ "$elapsed" -gt 0 ] && rate=", $((m_uncompressed / elapsed / 1000000)) MB/s"
printf 'restored %s (created %s on %s) into %s:%s: databases %s, %s tables and views, %s bytes of dump in %ss%s\n' \
  "$name" "$m_created" "$m_server" "$MYSQL_HOST" "$port" "$in_manifest" "$tables" "$m_uncompressed" \
  "$elapsed" "$rate"
