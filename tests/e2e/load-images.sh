#!/usr/bin/env bash
# Puts the images the dev environment runs into the kind cluster before `kubectl datajump install`:
# the scheduler image this workflow just built is re-tagged to exactly the reference the dev chart
# renders (so the chart is tested unchanged), every other image is pulled on the runner (which may
# be logged in to Harbor) and loaded, so kind nodes need no registry credentials.
#
# usage: load-images.sh LOCAL_SCHEDULER_IMAGE KIND_CLUSTER [HELM_ARG...]
#   HELM_ARGs (e.g. --set global.imageRegistry=...) must be the ones the install will use.
set -euo pipefail
cd "$(dirname "$0")/../.."

local_image="${1:?usage: load-images.sh LOCAL_SCHEDULER_IMAGE KIND_CLUSTER [HELM_ARG...]}"
cluster="${2:?usage: load-images.sh LOCAL_SCHEDULER_IMAGE KIND_CLUSTER [HELM_ARG...]}"
shift 2
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT

helm template datajump charts/datajump --namespace datajump-dev \
  -f charts/datajump/values-dev.yaml "$@" >"$rendered"

# "<scheduler image>" on the first line, then every other image of the render, one per line.
mapfile -t images < <(python3 - "$rendered" <<'PY'
import sys, yaml
scheduler, others = None, set()
for doc in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")):
    if not isinstance(doc, dict):
        continue
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        pod = spec
    else:  # workload templates; a CronJob nests its Job's template one level deeper
        pod = (spec.get("jobTemplate") or {}).get("spec", spec).get("template", {}).get("spec") or {}
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        if doc.get("kind") == "Deployment" and c.get("name") == "scheduler":
            scheduler = c["image"]
        else:
            others.add(c["image"])
if scheduler is None:
    sys.exit("no Deployment with a container named 'scheduler' in the dev render")
print(scheduler)
for image in sorted(others - {scheduler}):
    print(image)
PY
)

if [ "${#images[@]}" -eq 0 ]; then
  echo "load-images: could not list the dev render's images" >&2
  exit 1
fi
echo "scheduler image ${images[0]} <- $local_image"
docker tag "$local_image" "${images[0]}"
kind load docker-image --name "$cluster" "${images[0]}"

for image in "${images[@]:1}"; do
  if docker pull --quiet "$image" >/dev/null; then
    kind load docker-image --name "$cluster" "$image"
    echo "loaded $image"
  else
    # Not fatal here: the node may still pull it; install --wait reports what did not start.
    echo "::warning::could not pull $image on the runner; the kind node will try to pull it itself"
  fi
done
