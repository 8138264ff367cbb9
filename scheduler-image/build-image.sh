#!/usr/bin/env bash
# Builds the scheduler image without a container engine and prints the path of the OCI archive
# (an OCI image layout in one tar: `skopeo copy oci-archive:PATH …`, `ctr images import PATH`,
# `kubectl datajump images`-style tools and Harbor all read it).
#
# The image holds the static release binary (build-static.sh) and what the distroless base would
# add (see oci_image.py); its user, entrypoint, exposed port and labels come from the final stage
# of the Dockerfile. It is named with the reference the chart renders for the scheduler by
# default (`scheduler.image` in charts/datajump/values.yaml); IMAGE_REF overrides it.
#
#   bash scheduler-image/build-image.sh                 # -> target/oci/datajump-scheduler-0.1.0.oci.tar
#   IMAGE_REF=harbor.corp/dj/scheduler:0.1.0 bash scheduler-image/build-image.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"

# `registry`, `repository` and `tag` of the `scheduler.image` block of the chart's values.
chart_ref() {
  awk '
    /^[a-zA-Z]/ { in_sched = ($0 ~ /^scheduler:/) }
    in_sched && /^  image:/ { in_image = 1; next }
    in_sched && in_image && /^  [a-zA-Z]/ { in_image = 0 }
    in_sched && in_image && /^    (registry|repository|tag):/ {
      key = $1; sub(":", "", key); val = $2; gsub(/["\047]/, "", val); v[key] = val
    }
    END {
      if (v["registry"] == "" || v["repository"] == "" || v["tag"] == "") exit 1
      print v["registry"] "/" v["repository"] ":" v["tag"]
    }' "$repo_root/charts/datajump/values.yaml"
}

ref="${IMAGE_REF:-$(chart_ref)}" || { echo "error: no scheduler.image in charts/datajump/values.yaml" >&2; exit 1; }
version="${ref##*:}"
binary="$(bash "$here/build-static.sh")"
out_dir="$target_dir/oci"
mkdir -p "$out_dir"
out="$out_dir/datajump-scheduler-$version.oci.tar"

revision="$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo unknown)"
# Reproducible: every timestamp is the commit's.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"

digest="$(python3 "$here/oci_image.py" --dockerfile "$here/Dockerfile" --binary "$binary" \
  --ref "$ref" --out "$out" --mtime "$epoch" \
  --arg "VERSION=$version" --arg "REVISION=$revision" --arg "CREATED=$created")"
echo "built $ref ($digest)" >&2
echo "$out"
