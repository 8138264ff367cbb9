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
