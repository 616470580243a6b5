#!/bin/bash
# FAKE crictl (bundle-testbed test double, shipped in the test `cri-tools` RPM).
# Not for real machines.
#
# Records every call in /var/log/fake-k8s/calls.log ("crictl ARGS") and answers what
# `bundle install`'s plan and kubeadm's checks ask:
#   info                 the CRI status as JSON, once the real containerd answers on its
#                        socket (`ctr version`); fails like crictl when it does not
#   pull IMAGE           fetches IMAGE's manifest from its registry over HTTPS, with the
#                        CA containerd is given (/etc/containerd/certs.d/HOST/*.crt) and
#                        its client certificate (client.cert, client.key) there, as
#                        containerd would; remembers the image; fails like crictl when the
#                        registry does not have it or its certificate is not trusted
#   inspecti IMAGE       succeeds for an image pulled before
#   images [-q]          the images pulled so far
#   ps [-q] [-a] [--name etcd]
#                        no containers, except that a real `etcd` process on the host
#                        (started by a test) stands in for the etcd static pod's
#                        container: listed under a fixed ID; stop/rm ID: succeed
#   stop ETCD-ID         stops that etcd process and returns once it is gone, as
#                        crictl stop does; whatever runs the static pod (the kubelet,
#                        the testbed's static-pod-runner) starts it again
#   exec [-i] [-t] ID CMD...
#                        runs CMD on the host for the etcd stand-in (its data under
#                        /var/lib/etcd and its certificates are the host's paths, as
#                        kubeadm's hostPath mounts make them; also logged in the
#                        cluster's calls.log when the fakes' shared folder is there);
#                        other IDs: not found
#   version              versions
set -u
LOG=/var/log/fake-k8s
STATE=/var/lib/fake-crictl
SOCK=/run/containerd/containerd.sock
mkdir -p "$LOG" "$STATE"
echo "crictl $*" >>"$LOG/calls.log"
die() {
    echo "$*" >&2
    exit 1
}
running() { [ -S "$SOCK" ] && ctr --address "$SOCK" version >/dev/null 2>&1; }
need_runtime() {
    running || die "E0101 00:00:00.000000 validate service connection: validate CRI v1 runtime API for endpoint \"unix://$SOCK\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix $SOCK: connect: no such file or directory\""
}

# The etcd static pod's container, when a real etcd runs on the host.
ETCD_ID=e7cd00000000000000000000000000000000000000000000000000000000000a
etcd_running() { pgrep -x etcd >/dev/null 2>&1; }
if [ "${1:-}" = exec ]; then
    shift
    while [[ ${1:-} == -* ]]; do shift; done
    id=${1:-}
    shift
    { [ "$id" = "$ETCD_ID" ] && etcd_running; } ||
        die "E0101 00:00:00.000000 execing command in container: container \"$id\" not found"
    # in the cluster's call log too, where a test orders a snapshot against kubeadm's calls
    [ -d /var/lib/fake-k8s-shared ] && echo "$(hostname) crictl exec $*" >>/var/lib/fake-k8s-shared/calls.log
    exec "$@"
fi

pos=() quiet=""
for a in "$@"; do
    case $a in
    -q | --quiet) quiet=1 ;;
    -*) ;;
    *) pos+=("$a") ;;
    esac
done
cmd=${pos[0]:-}
arg=${pos[1]:-}

case $cmd in
info)
    need_runtime
    cat <<'JSON'
{
  "status": {
    "conditions": [
      {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
      {"type": "NetworkReady", "status": true, "reason": "", "message": ""}
    ]
  },
  "config": {"sandboxImage": "fake (bundle-testbed crictl)"}
}
JSON
    ;;
pull)
    need_runtime
    [ -n "$arg" ] || die "image name cannot be empty"
    host=${arg%%/*}
    rest=${arg#*/}
    if [[ $rest == *@* ]]; then
        repo=${rest%@*} ref=${rest#*@}
    elif [[ ${rest##*/} == *:* ]]; then
        repo=${rest%:*} ref=${rest##*:}
    else
        repo=$rest ref=latest
    fi
    ca=()
    for c in /etc/containerd/certs.d/"$host"/*.crt; do
        [ -f "$c" ] && ca=(--cacert "$c")
    done
    d=/etc/containerd/certs.d/$host
    [ -f "$d/client.cert" ] && ca+=(--cert "$d/client.cert" --key "$d/client.key")
    accept="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
    err=$(curl -sS -f --max-time 20 "${ca[@]}" -H "Accept: $accept" -o "$STATE/last-manifest" \
        "https://$host/v2/$repo/manifests/$ref" 2>&1) ||
        die "E0101 00:00:00.000000 pull image \"$arg\" failed: rpc error: code = Unknown desc = failed to pull and unpack image \"$arg\": failed to resolve reference \"$arg\": $err"
    digest=$(sha256sum "$STATE/last-manifest" | cut -d' ' -f1)
    grep -qxF "$arg sha256:$digest" "$STATE/images" 2>/dev/null || echo "$arg sha256:$digest" >>"$STATE/images"
    echo "Image is up to date for sha256:$digest"
    ;;
inspecti)
    need_runtime
    line=$(grep -F "$arg " "$STATE/images" 2>/dev/null | head -n 1)
    [ -n "$line" ] || die "E0101 00:00:00.000000 no such image \"$arg\" present"
    printf '{"status": {"id": "%s", "repoTags": ["%s"]}}\n' "${line#* }" "$arg"
    ;;
images)
    need_runtime
    [ -n "$quiet" ] || echo "IMAGE TAG IMAGE ID SIZE"
    while read -r ref id; do
        if [ -n "$quiet" ]; then echo "$id"; else echo "${ref%:*} ${ref##*:} ${id:7:13} 1MB"; fi
    done <"$STATE/images" 2>/dev/null
    ;;
ps)
    name=$arg
    if etcd_running && { [ -z "$name" ] || [ "$name" = etcd ]; }; then
        if [ -n "$quiet" ]; then echo "$ETCD_ID"; else
            echo "CONTAINER IMAGE CREATED STATE NAME ATTEMPT POD ID POD"
            echo "${ETCD_ID:0:13} etcd 5m Running etcd 0 ${ETCD_ID:0:13} etcd-$(hostname)"
        fi
        exit 0
    fi
    need_runtime
    [ -n "$quiet" ] || echo "CONTAINER IMAGE CREATED STATE NAME ATTEMPT POD ID POD"
    ;;
stop)
    if [ "$arg" = "$ETCD_ID" ] && etcd_running; then
        pkill -x etcd
        for _ in $(seq 100); do etcd_running || break; sleep 0.1; done
        echo "$arg"
        exit 0
    fi
    need_runtime
    ;;
rm | stopp | rmp)
    need_runtime
    ;;
version)
    echo "Version:  0.1.0"
    echo "RuntimeName:  containerd"
    echo "RuntimeVersion:  fake (bundle-testbed)"
    echo "RuntimeApiVersion:  v1"
    ;;
*)
    die "fake crictl: \"$cmd\" is not faked (bundle-testbed: see the header of $0)"
    ;;
esac
