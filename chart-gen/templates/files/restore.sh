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
# MYSQL_PORT (3306), MYSQL_USER, MYSQL_PASSWORD (or MYSQL_USER_FILE / MYSQL_PASSWORD_FILE naming
# files that hold them, as the chart mounts its Secrets). The password never appears on a command line: the
# client reads it from a mode-600 option file in a private temporary directory under TMPDIR.
set -eu
umask 077

log() { printf 'restore: %s\n' "$*" >&2; }
die() { printf 'restore: error: %s\n' "$*" >&2; exit 1; }
refuse() { printf 'restore: refused: %s; the server was not touched\n' "$*" >&2; exit 1; }
config_error() { printf 'restore: configuration error: %s\n' "$*" >&2; exit 2; }

# Shared functions: credentials from files, manifest checks, client option file, connection
# errors.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"
read_credential_files MYSQL_USER MYSQL_PASSWORD

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


# --- verify everything before touching the server -----------------------------------------------
[ -f "$manifest" ] || refuse "backup $name not found: $manifest does not exist"
[ -f "$archive" ] || refuse "backup $name is incomplete: its archive $archive does not exist"
read_manifest "$manifest" || refuse "manifest $manifest is invalid: $m_problem"
[ "$m_name" = "$name" ] || refuse "manifest $manifest names backup '$m_name', not '$name'"
check_archive "$archive" || refuse "backup $name does not match its manifest: $m_problem"
log "archive matches its manifest (sha256 $m_sha256); checking that it decompresses completely"

check_dump "$archive" || refuse "backup $name is unusable: $m_problem"

# --- connect --------------------------------------------------------------------------------------
cnf=$work/client.cnf
write_client_options "$cnf"
server_version=$(client -e 'SELECT VERSION()' 2>"$work/err") || connect_failure "$work/err" refuse

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
  connect_failure "$work/err" die
rate=
[ "$elapsed" -gt 0 ] && rate=", $((m_uncompressed / elapsed / 1000000)) MB/s"
printf 'restored %s (created %s on %s) into %s:%s: databases %s, %s tables and views, %s bytes of dump in %ss%s\n' \
  "$name" "$m_created" "$m_server" "$MYSQL_HOST" "$port" "$in_manifest" "$tables" "$m_uncompressed" \
  "$elapsed" "$rate"
