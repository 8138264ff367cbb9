#!/bin/sh
# DataJump database set-up for an operator-managed or otherwise bare MySQL server: creates the
# platform's database and user when absent, keeps the user's password equal to the platform
# Secret's, and grants the user everything on its database (and nothing else). Idempotent, so the
# chart runs it after every install and upgrade. Waits for the server to accept connections (a new
# InnoDBCluster takes minutes) up to a deadline. Exit codes: 0 ok, 1 failed, 2 bad configuration.
#
# Environment (set by the chart's database Job):
#   MYSQL_HOST, MYSQL_PORT (3306)      the server
#   MYSQL_USER, MYSQL_PASSWORD         an account that may create databases and users (root), or
#   MYSQL_USER_FILE, MYSQL_PASSWORD_FILE files holding them (mounted Secret)
#   APP_DATABASE, APP_USER             what to create
#   APP_PASSWORD or APP_PASSWORD_FILE  the application user's password
#   WAIT_SECONDS (600)                 how long to wait for the server
#
# No password appears on a command line: the client reads the admin's from a mode-600 option
# file, and the SQL (with the application password) goes to the client on standard input.
set -eu
umask 077

log() { printf 'database: %s\n' "$*" >&2; }
die() { printf 'database: error: %s\n' "$*" >&2; exit 1; }
config_error() { printf 'database: configuration error: %s\n' "$*" >&2; exit 2; }

# Shared functions: credentials from files, client option file, connection errors.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"
read_credential_files MYSQL_USER MYSQL_PASSWORD APP_PASSWORD

[ -n "${MYSQL_HOST:-}" ] || config_error "MYSQL_HOST is not set (expected the MySQL server host)"
[ -n "${MYSQL_USER:-}" ] || config_error "MYSQL_USER is not set (expected an administrative user)"
[ "${MYSQL_PASSWORD+set}" = set ] || config_error "MYSQL_PASSWORD is not set"
[ -n "${APP_PASSWORD:-}" ] || config_error "APP_PASSWORD is not set (expected the application user's password)"
port=${MYSQL_PORT:-3306}
wait_seconds=${WAIT_SECONDS:-600}
case $port in '' | *[!0-9]*) config_error "MYSQL_PORT='$port' is not a port number" ;; esac
case $wait_seconds in '' | *[!0-9]*) config_error "WAIT_SECONDS='$wait_seconds' is not a number of seconds" ;; esac
# Names go into SQL as identifiers: allow exactly what MySQL allows unquoted.
case ${APP_DATABASE:-} in '' | *[!A-Za-z0-9_]*)
  config_error "APP_DATABASE='${APP_DATABASE:-}' must be letters, digits and '_'" ;;
esac
case ${APP_USER:-} in '' | *[!A-Za-z0-9_]*)
  config_error "APP_USER='${APP_USER:-}' must be letters, digits and '_'" ;;
esac
[ "${#APP_USER}" -le 32 ] || config_error "APP_USER='$APP_USER' is longer than MySQL's 32 characters"

if command -v mariadb >/dev/null 2>&1; then
  client_cmd=mariadb
elif command -v mysql >/dev/null 2>&1; then
  client_cmd=mysql
else
  die "neither mariadb nor mysql is installed in this image"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/datajump-database.XXXXXX") ||
  die "cannot create a temporary directory under ${TMPDIR:-/tmp} (set TMPDIR to a writable path)"
trap 'rm -rf "$work"' EXIT INT TERM
cnf=$work/client.cnf
write_client_options "$cnf"

# Wait until the server answers; an authentication failure will not heal by waiting.
deadline=$(($(date +%s) + wait_seconds))
until client -e 'SELECT 1' >/dev/null 2>"$work/err"; do
  case $(tr '[:upper:]' '[:lower:]' <"$work/err") in
    *"access denied"*) connect_failure "$work/err" die ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || {
    log "the server did not accept connections within ${wait_seconds}s"
    connect_failure "$work/err" die
  }
  sleep 5
done

# A string literal: backslashes and single quotes escaped.
sql_string() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/''/g")"; }
password=$(sql_string "$APP_PASSWORD")
existed=$(client -e "SELECT COUNT(*) FROM mysql.user WHERE user = '$APP_USER' AND host = '%'" 2>"$work/err") ||
  connect_failure "$work/err" die
client 2>"$work/err" <<SQL || die "setting up $APP_DATABASE for $APP_USER failed: $(tr '\n' ' ' <"$work/err")"
CREATE DATABASE IF NOT EXISTS \`$APP_DATABASE\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$APP_USER'@'%' IDENTIFIED BY $password;
ALTER USER '$APP_USER'@'%' IDENTIFIED BY $password;
GRANT ALL PRIVILEGES ON \`$APP_DATABASE\`.* TO '$APP_USER'@'%';
SQL
if [ "$existed" = 0 ]; then
  log "created user $APP_USER with all privileges on database $APP_DATABASE"
else
  log "user $APP_USER exists; password and privileges on $APP_DATABASE brought up to date"
fi
