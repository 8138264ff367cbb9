#!/bin/sh
# Tears down a test cluster once the test process that started it is gone: that process holds
# the write end of this script's stdin, so EOF here means it exited (normally, by panic or by a
# signal). Then: stop the fake kubelet or the real node, stop the control plane, delete the
# state directory (unless KEEP=1).
#   cluster-guard.sh DIR CLUSTER_SH
dir=$1 cluster_sh=$2
cat >/dev/null
if [ -f "$dir/fake-kubelet.pid" ]; then
  kill "$(cat "$dir/fake-kubelet.pid")" 2>/dev/null
fi
# Processes the tests started in the background and recorded here (e.g. a scheduler).
for pidfile in "$dir"/run/test-*.pid; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
# A real node (node.sh) is stopped before the control plane, so its pods are torn down in order
# and the machine's node lock is free for the next test binary.
if [ -d "$dir/node" ]; then
  bash "$(dirname "$cluster_sh")/node.sh" stop "$dir" >/dev/null 2>&1
fi
bash "$cluster_sh" stop "$dir" >/dev/null 2>&1
if [ "${KEEP:-0}" != 1 ]; then
  rm -rf "$dir"
fi
