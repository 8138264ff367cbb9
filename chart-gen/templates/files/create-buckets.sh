#!/bin/sh
# DataJump bucket set-up: makes sure every bucket the platform and the backup upload use exists on
# the S3-compatible object store. Idempotent (an existing bucket is left as it is), so the chart
# runs it after every install and upgrade. Waits for the server to answer (it may still be
# starting) up to a deadline. Exit codes: 0 ok, 1 a bucket could not be created, 2 bad
# configuration.
#
# Environment (set by the chart's bucket Job):
#   S3_ENDPOINT                  e.g. http://datajump-minio:9000 (path-style requests)
#   S3_ACCESS_KEY, S3_SECRET_KEY credentials allowed to create buckets, or S3_ACCESS_KEY_FILE,
#                                S3_SECRET_KEY_FILE naming files that hold them (mounted Secret)
#   S3_REGION (us-east-1)        signing region
#   BUCKETS                      space-separated bucket names
#   WAIT_SECONDS (300)           how long to wait for the server to answer at all
#
# Credentials go to curl through a mode-600 config file, never on a command line.
set -eu
umask 077

log() { printf 'buckets: %s\n' "$*" >&2; }
die() { printf 'buckets: error: %s\n' "$*" >&2; exit 1; }
config_error() { printf 'buckets: configuration error: %s\n' "$*" >&2; exit 2; }

# A *_FILE variable wins over the plain one: Secrets are mounted as files, not passed as env.
for var in S3_ACCESS_KEY S3_SECRET_KEY; do
  eval "file=\${${var}_FILE:-}"
  # shellcheck disable=SC2154 # assigned by the eval above
  if [ -n "$file" ]; then
    [ -r "$file" ] || config_error "${var}_FILE='$file' is not a readable file"
    eval "$var=\$(cat \"\$file\")"
  fi
done
for var in S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY BUCKETS; do
  eval "value=\${$var:-}"
  # shellcheck disable=SC2154 # assigned by the eval above
  [ -n "$value" ] || config_error "$var is not set"
done
wait_seconds=${WAIT_SECONDS:-300}
case $wait_seconds in '' | *[!0-9]*) config_error "WAIT_SECONDS='$wait_seconds' is not a number of seconds" ;; esac
set -f
for bucket in $BUCKETS; do
  # S3 bucket naming rules: 3-63 lowercase letters, digits, '.' and '-', starting and ending
  # with a letter or digit.
  case $bucket in
    *[!a-z0-9.-]* | [.-]* | *[.-]) config_error "bucket name '$bucket' is not a valid S3 bucket name" ;;
  esac
  [ "${#bucket}" -ge 3 ] && [ "${#bucket}" -le 63 ] ||
    config_error "bucket name '$bucket' must be 3 to 63 characters"
done
command -v curl >/dev/null 2>&1 || die "curl is not installed in this image"

work=$(mktemp -d "${TMPDIR:-/tmp}/buckets.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$work"' EXIT INT TERM
config_escape() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
printf 'user = "%s:%s"\n' "$(config_escape "$S3_ACCESS_KEY")" "$(config_escape "$S3_SECRET_KEY")" \
  >"$work/curl.cfg"

# Prints the HTTP status of a signed request ("000" when the server did not answer); the
# response body is left in $work/body.
request() {
  curl --config "$work/curl.cfg" --silent --show-error --output "$work/body" \
    --write-out '%{http_code}' --connect-timeout 5 --max-time 30 \
    --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -X "$1" "${S3_ENDPOINT%/}/$2" 2>"$work/curl.err" || true
}
# The S3 error code of the last response, e.g. AccessDenied.
error_code() { sed -n 's:.*<Code>\([^<]*\)</Code>.*:\1:p' "$work/body" 2>/dev/null | head -n 1; }

deadline=$(($(date +%s) + wait_seconds))
for bucket in $BUCKETS; do
  while :; do
    status=$(request HEAD "$bucket")
    [ "$status" != 000 ] && break
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "$S3_ENDPOINT did not answer within ${wait_seconds}s: $(tr '\n' ' ' <"$work/curl.err")"
    sleep 2
  done
  case $status in
    200) log "bucket $bucket exists"; continue ;;
    404) ;;
    403) die "checking bucket $bucket: access denied (HTTP 403); check the access key and secret" ;;
    *) die "checking bucket $bucket: HTTP $status from $S3_ENDPOINT" ;;
  esac
  status=$(request PUT "$bucket")
  case $status in
    200) log "created bucket $bucket" ;;
    # Created meanwhile by someone else with the same credentials: that is what we wanted.
    409) [ "$(error_code)" = BucketAlreadyOwnedByYou ] ||
      die "creating bucket $bucket: $(error_code) (HTTP 409); the name is taken by another owner"
      log "bucket $bucket exists" ;;
    *) die "creating bucket $bucket: HTTP $status $(error_code) from $S3_ENDPOINT" ;;
  esac
done
