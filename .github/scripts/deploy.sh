#!/usr/bin/env bash
# Deploys one environment: the step the deploy workflow runs for each environment, and the script
# its test runs against a local cluster.
#
#   deploy.sh ENV VERSION
#
# In order, stopping at the first failure and changing nothing before the upgrade itself:
#   1. validate the site's values for ENV with the chart (chart-gen validate -f);
#   2. when the release exists, preview the upgrade (kubectl datajump diff) and stop on a change the
#      API server refuses (an immutable field) unless DATAJUMP_ALLOW_IMMUTABLE=true;
#   3. in prod, take a backup first (kubectl datajump backup create --wait);
#   4. kubectl datajump upgrade --wait (install when there is no release yet), waiting for
#      readiness; on failure, print how to roll back.
#
# Settings (environment variables):
#   KUBECONFIG                the environment's cluster (the workflow writes it from a secret)
#   DATAJUMP_CHART            chart reference, default oci://$HARBOR_HOST/$HARBOR_PROJECT/datajump;
#                             a local chart directory is used as --chart-dir (VERSION must then
#                             equal its Chart.yaml version)
#   DATAJUMP_SITE_VALUES      folder holding values-<env>.yaml (each optional); when set, it must
#                             be a folder (a mistyped path stops the deploy rather than deploying
#                             the chart's defaults)
#   DATAJUMP_ALLOW_IMMUTABLE  "true" to go on although the preview shows an immutable change
#   DATAJUMP_RELEASE          release name (default datajump)
#   DATAJUMP_TIMEOUT          how long the upgrade may wait for readiness (default 15m)
#   CHART_GEN, KUBECTL_DATAJUMP, HELM   the binaries (default: chart-gen, kubectl-datajump and
#                             helm from PATH); the plugin is also given HELM as DATAJUMP_HELM
set -euo pipefail

usage() {
  echo "usage: deploy.sh ENV VERSION   (ENV: dev, test, staging or prod; VERSION: X.Y.Z)" >&2
  exit 2
}

[ "$#" -eq 2 ] || usage
env_name="$1"
version="$2"
case "$env_name" in dev | test | staging | prod) ;; *)
  echo "deploy: unknown environment \"$env_name\" (dev, test, staging or prod)" >&2
  exit 2
  ;;
esac
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "deploy: version \"$version\" is not a chart version X.Y.Z (a release tag without its v)" >&2
  exit 2
fi

chart_gen="${CHART_GEN:-chart-gen}"
plugin="${KUBECTL_DATAJUMP:-kubectl-datajump}"
helm="${HELM:-helm}"
release="${DATAJUMP_RELEASE:-datajump}"
namespace="datajump-$env_name"
timeout="${DATAJUMP_TIMEOUT:-15m}"
export DATAJUMP_RELEASE="$release" DATAJUMP_HELM="$helm"

chart="${DATAJUMP_CHART:-}"
if [ -z "$chart" ]; then
  if [ -z "${HARBOR_HOST:-}" ] || [ -z "${HARBOR_PROJECT:-}" ]; then
    echo "deploy: set DATAJUMP_CHART, or HARBOR_HOST and HARBOR_PROJECT for the Harbor chart" >&2
    exit 2
  fi
  chart="oci://$HARBOR_HOST/$HARBOR_PROJECT/datajump"
fi
chart_flags=()
if [ -d "$chart" ]; then
  chart_version="$(sed -n 's/^version: *//p' "$chart/Chart.yaml" | tr -d '"')"
  if [ "$chart_version" != "$version" ]; then
    echo "deploy: $chart holds chart $chart_version, not $version" >&2
    exit 2
  fi
  chart_flags=(--chart-dir "$chart")
else
  chart_flags=(--chart "$chart" --version "$version")
fi

values_flags=()
site_file=""
if [ -n "${DATAJUMP_SITE_VALUES:-}" ] && [ ! -d "$DATAJUMP_SITE_VALUES" ]; then
  echo "deploy: DATAJUMP_SITE_VALUES=$DATAJUMP_SITE_VALUES is not a folder: it names the folder holding values-<env>.yaml (check the site repository's checkout and DATAJUMP_SITE_PATH)" >&2
  exit 2
fi
if [ -n "${DATAJUMP_SITE_VALUES:-}" ] && [ -f "$DATAJUMP_SITE_VALUES/values-$env_name.yaml" ]; then
  site_file="$DATAJUMP_SITE_VALUES/values-$env_name.yaml"
  values_flags=(-f "$site_file")
fi

echo "== deploy $env_name: chart $version from $chart into $namespace${site_file:+ with $site_file}"

echo "== validate the values"
validate=("$chart_gen" validate --env "$env_name")
[ -n "$site_file" ] && validate+=(-f "$site_file")
"${validate[@]}"

previous=""
if "$helm" status "$release" -n "$namespace" >/dev/null 2>&1; then
  previous="$("$helm" history "$release" -n "$namespace" --max 1 -o json |
    python3 -c 'import json,sys; h=json.load(sys.stdin)[-1]; print(h["revision"], h["chart"])')"
  echo "== preview (deployed: revision ${previous% *}, ${previous#* })"
  preview="$(mktemp)"
  trap 'rm -f "$preview"' EXIT
  "$plugin" diff --env "$env_name" "${chart_flags[@]}" "${values_flags[@]}" -o json >"$preview"
  # Prints the changes and, last, how many of them the API server refuses.
  immutable="$(python3 - "$preview" <<'EOF'
import json, sys
cmp = json.load(open(sys.argv[1]))
for c in cmp.get("changes", []):
    print(f"  {c['change']:8} {c['kind']}/{c['name']}", file=sys.stderr)
if not cmp.get("changes"):
    print("  no changes", file=sys.stderr)
for i in cmp.get("immutable", []):
    print(f"  IMMUTABLE {i['object']} {i['field']}: {i['remedy']}", file=sys.stderr)
print(len(cmp.get("immutable", [])))
EOF
)"
  if [ "$immutable" -gt 0 ]; then
    if [ "${DATAJUMP_ALLOW_IMMUTABLE:-false}" != "true" ]; then
      echo "deploy: stopped: $immutable change(s) the API server refuses (above); nothing was changed. Apply each fix, or start the deploy again with the immutable-changes override (DATAJUMP_ALLOW_IMMUTABLE=true)." >&2
      exit 3
    fi
    echo "deploy: going on despite $immutable immutable change(s): the override was given"
  fi
  if [ "$env_name" = prod ]; then
    echo "== backup before upgrading prod"
    "$plugin" backup create --env prod --wait
  fi
else
  echo "== no release $release in $namespace yet: first install"
fi

echo "== upgrade"
if ! "$plugin" upgrade --env "$env_name" "${chart_flags[@]}" "${values_flags[@]}" --wait --timeout "$timeout"; then
  echo "deploy: the upgrade of $env_name to $version failed." >&2
  if [ -n "$previous" ]; then
    previous_version="${previous#*datajump-}"
    echo "deploy: to roll back to what ran before (revision ${previous% *}, ${previous#* }):" >&2
    echo "  helm rollback $release ${previous% *} -n $namespace --wait" >&2
    # helm rollback restores that revision's values too; an upgrade needs the site's values as
    # they were then, and a local chart folder holds only the version that failed.
    hint_flags="${site_file:+ -f <values-$env_name.yaml as it was for $previous_version>}"
    [ "$release" = datajump ] || hint_flags=" --release $release$hint_flags"
    if [ -d "$chart" ]; then
      echo "  or: kubectl datajump upgrade --env $env_name --chart-dir <chart $previous_version's folder, e.g. charts/datajump at tag v$previous_version>$hint_flags --wait" >&2
    else
      echo "  or: kubectl datajump upgrade --env $env_name --chart $chart --version $previous_version$hint_flags --wait" >&2
    fi
  else
    echo "deploy: it was a first install; remove it with: kubectl datajump uninstall --env $env_name" >&2
  fi
  exit 1
fi
echo "== $env_name runs chart $version"
