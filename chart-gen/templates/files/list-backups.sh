#!/bin/sh
# Lists the backups in BACKUP_DIR as a JSON array (newest first) of their manifests, each with a
# `status`: "verified" (restore.sh would accept it: archive present, size and sha256 match the
# manifest, it decompresses completely into a finished dump of exactly the manifest's databases),
# "corrupt" (any of that fails, or the manifest is unreadable; `reason` says how) or
# "missing-archive". `kubectl datajump
# backup list` runs this and refuses to restore anything not "verified". Needs no server.
#
# Environment: BACKUP_DIR (required), BACKUP_PREFIX (datajump), BACKUP_NAME (only this backup).
# Exit codes: 0 listed (whatever the statuses), 2 bad configuration.
set -eu
umask 077

config_error() { printf 'list-backups: configuration error: %s\n' "$*" >&2; exit 2; }
die() { printf 'list-backups: error: %s\n' "$*" >&2; exit 1; }

[ -n "${BACKUP_DIR:-}" ] || config_error "BACKUP_DIR is not set (expected the backup directory)"
dir=$BACKUP_DIR
prefix=${BACKUP_PREFIX:-datajump}
only=${BACKUP_NAME:-}
[ -d "$dir" ] || config_error "BACKUP_DIR='$dir' is not a directory"
case $prefix in '' | *[!A-Za-z0-9._-]*)
  config_error "BACKUP_PREFIX='$prefix' may only contain letters, digits, '.', '_' and '-'" ;;
esac
case $only in *[!A-Za-z0-9._-]*)
  config_error "BACKUP_NAME='$only' may only contain letters, digits, '.', '_' and '-'" ;;
esac

# Shared functions: manifest checks, client option file, connection errors.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }

# One JSON object per backup; fields come from the validated manifest, never copied verbatim.
entry() {
  base=$1
  file=$dir/$base.json
  archive=$dir/$base.sql.gz
  if ! read_manifest "$file"; then
    printf '{"name": %s, "status": "corrupt", "reason": %s}' \
      "$(json_string "$base")" "$(json_string "manifest: $m_problem")"
    return
  fi
  status=verified
  reason=
  if [ "$m_name" != "$base" ]; then
    status=corrupt reason="manifest names $m_name but the file is $base.json"
  elif [ ! -f "$archive" ]; then
    status=missing-archive reason="$base.sql.gz is not in $dir"
  elif ! check_archive "$archive" || ! check_dump "$archive"; then
    status=corrupt reason=$m_problem
  fi
  dbs=
  for db in $m_databases; do dbs="$dbs${dbs:+, }$(json_string "$db")"; done
  printf '{"formatVersion": %s, "name": %s, "created": %s, "serverVersion": %s, "databases": [%s], "compression": "gzip", "size": %s, "uncompressedSize": %s, "sha256": %s, "status": %s' \
    "$m_format" "$(json_string "$base")" "$(json_string "$m_created")" "$(json_string "$m_server")" \
    "$dbs" "$m_size" "$m_uncompressed" "$(json_string "$m_sha256")" "$(json_string "$status")"
  [ -z "$reason" ] || printf ', "reason": %s' "$(json_string "$reason")"
  printf '}'
}

names=$(
  for manifest in "$dir/$prefix"-*.json; do
    base=${manifest##*/}
    base=${base%.json}
    case $base in "$prefix"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z)
      [ -z "$only" ] || [ "$base" = "$only" ] || continue
      [ -f "$manifest" ] && printf '%s\n' "$base" ;;
    esac
  done | sort -r
)
set -f
first=true
printf '['
for base in $names; do
  if [ "$first" = true ]; then first=false; printf '\n  '; else printf ',\n  '; fi
  entry "$base"
done
[ "$first" = true ] || printf '\n'
printf ']\n'
