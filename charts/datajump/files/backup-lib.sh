# DataJump backup library, sourced by backup.sh, restore.sh and list-backups.sh (the chart mounts
# all four files together under /scripts). It defines functions only; the sourcing script defines
# die() first and sets the variables each function names.
# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # m_* are results for the sourcing scripts; port, cnf and
# client_cmd are set by them

# --- credentials from files -------------------------------------------------------------------------
# For each variable named, a non-empty <VAR>_FILE names a file whose content becomes <VAR> (the
# chart mounts Secrets as files instead of passing them as environment variables). Uses
# config_error() of the sourcing script.
read_credential_files() {
  for c_var in "$@"; do
    eval "c_file=\${${c_var}_FILE:-}"
    [ -n "$c_file" ] || continue
    [ -r "$c_file" ] || config_error "${c_var}_FILE='$c_file' is not a readable file"
    eval "$c_var=\$(cat \"\$c_file\")"
  done
}

# --- manifest reading ------------------------------------------------------------------------------
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

# --- client connection -----------------------------------------------------------------------------
# Writes a client option file (mode 600 under umask 077) so the password never appears on a
# command line. Option-file values: backslash is an escape character and quotes keep '#' and
# spaces literal. Uses MYSQL_HOST, MYSQL_USER, MYSQL_PASSWORD and $port.
option_value() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g')"; }
write_client_options() {
  {
    echo '[client]'
    echo "host=$(option_value "$MYSQL_HOST")"
    echo "port=$port"
    echo "user=$(option_value "$MYSQL_USER")"
    echo "password=$(option_value "$MYSQL_PASSWORD")"
    echo 'protocol=TCP'
  } >"$1"
}

# Runs the client ($client_cmd) with the option file $cnf.
client() { "$client_cmd" --defaults-extra-file="$cnf" --batch --skip-column-names "$@"; }

# Turns a client's stderr (file $1) into a message naming the cause an operator can act on, and
# hands it to the function named by $2 (die or refuse), which exits.
connect_failure() {
  said=$(tr '\n' ' ' <"$1" | sed 's/ *$//')
  case $(printf '%s' "$said" | tr '[:upper:]' '[:lower:]') in
    *"access denied"*)
      "$2" "authentication failed for user '$MYSQL_USER' at $MYSQL_HOST:$port - check MYSQL_USER and MYSQL_PASSWORD (server said: $said)" ;;
    *"can't connect"* | *"unknown server host"* | *"unknown mysql server host"* | *"lost connection"* | *"connection refused"*)
      "$2" "cannot reach the MySQL server at $MYSQL_HOST:$port - is it running and reachable? (client said: $said)" ;;
    *) "$2" "cannot query the MySQL server at $MYSQL_HOST:$port: $said" ;;
  esac
}
