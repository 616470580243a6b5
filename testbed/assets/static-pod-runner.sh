#!/bin/bash
# TEST DOUBLE (bundle-testbed): a stand-in for the kubelet's static pod handling, for
# etcd only. Not for real machines.
#
# Test hosts run no kubelet, so nothing would stop etcd when kubeadm's manifest is moved
# out of /etc/kubernetes/manifests, nor start it again when the file comes back. This
# loop does what the kubelet does with that one file:
#   - while MANIFEST exists, the pod's container runs: its `command` (kubeadm writes
#     `- command:` then one `- ARG` item per line: `etcd --name=… --data-dir=/var/lib/etcd …`)
#     as a process on the host, where the pod's hostPaths (/var/lib/etcd,
#     /etc/kubernetes/pki/etcd) are; started again, after 1 s, when it exits (the kubelet
#     backs off longer);
#   - when MANIFEST goes away, the process gets SIGTERM and is waited for;
#   - when it comes back, the process starts again from the file's command.
# The command is read at each start: a file changed in place is not noticed until the
# next start (the kubelet would restart the pod). A manifest without a command (the
# fake kubeadm's) is waited on. Output goes to LOG.
# Usage: static-pod-runner [MANIFEST [LOG]]
set -u
manifest=${1:-/etc/kubernetes/manifests/etcd.yaml}
log=${2:-/var/log/etcd.log}
pid=
say() { echo "static-pod-runner: $*" >>"$log"; }
command_of() {
    awk '/^ *- command:[[:space:]]*$/ { on = 1; next }
         on && /^ *- / { sub(/^ *- /, ""); print; next }
         on { exit }' "$1"
}
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; exit 0' TERM INT
while :; do
    if [ -f "$manifest" ]; then
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            say "the container exited ($?); starting it again"
            pid=
            sleep 1
        fi
        if [ -z "$pid" ]; then
            mapfile -t cmd < <(command_of "$manifest" 2>/dev/null)
            if [ "${#cmd[@]}" -gt 0 ]; then
                say "$manifest: starting ${cmd[*]}"
                "${cmd[@]}" >>"$log" 2>&1 </dev/null &
                pid=$!
            else
                sleep 1
            fi
        fi
    elif [ -n "$pid" ]; then
        say "$manifest is gone: stopping the container ($pid)"
        kill "$pid" 2>/dev/null
        wait "$pid"
        pid=
    fi
    sleep 0.2
done
