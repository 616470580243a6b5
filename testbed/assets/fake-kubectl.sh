#!/bin/bash
# FAKE kubectl @VERSION@ (bundle-testbed test double, shipped in the test `kubectl` RPM).
# Not for real machines.
#
# Records every call in /var/log/fake-k8s/calls.log ("kubectl ARGS"; the manifest read
# from stdin with `-f -` follows, indented) and, in the order of the whole cluster, in
# /var/lib/fake-k8s-shared/calls.log ("HOST kubectl ARGS"). Needs a kubeconfig (--kubeconfig, $KUBECONFIG
# or ~/.kube/config) whose API server answers (the fake one kubeadm starts, usually
# through the VIP). Reads the cluster from /var/lib/fake-k8s-shared (see fake kubeadm):
#   get node NAME                   that node, or NotFound
#   get nodes [--no-headers] [-o wide|name]  the registered nodes; Ready once a manifest
#                                   with a DaemonSet (the CNI) was applied, NotReady before
#   apply [--server-side] -f F|-    copies F to /var/log/fake-k8s/applied/ and the shared
#                                   applied/ folder, prints one line per object
#   rollout status daemonset/NAME   succeeds once NAME was applied
#   -n kube-system get pods -l component=etcd|kube-apiserver
#   -n NS get configmap NAME -o jsonpath={.data.KEY}   KEY of the ConfigMap applied last
#   -n kube-system exec etcd-NODE -- etcdctl … member list | member remove ID |
#                                   endpoint health [--cluster]
#                                   members from the shared etcd-members; a joining one is
#                                   `unstarted` (no name, no client URL, not in --cluster
#                                   health) for its first etcd-unstarted-lists member lists
#                                   (see the fake kubeadm), as etcd lists a member added but
#                                   not yet running
#   drain N, cordon N               N marked unschedulable (STATUS Ready,SchedulingDisabled)
#   uncordon N                      schedulable again
#   diff -f F                       exit 0 when F is what was applied last under its name,
#                                   1 (with a diff header) when it differs, as kubectl diff
#   get node(s): VERSION is the node's kubelet's (shared kubelet-versions), this
#   kubectl's version for a node that never reported one
#   delete node N, get --raw /readyz, version, cluster-info
#   completion bash                 a loadable completion script (no cluster needed)
set -u
VERSION=@VERSION@
LOG=/var/log/fake-k8s
SHARED=/var/lib/fake-k8s-shared
mkdir -p "$LOG/applied"
echo "kubectl $*" >>"$LOG/calls.log"
[ -d "$SHARED" ] && echo "$(hostname) kubectl $*" >>"$SHARED/calls.log"
die() {
    echo "$*" >&2
    exit 1
}

# As the real one: no cluster needed, a script bash-completion can source.
if [ "${1:-}" = completion ]; then
    [ "${2:-}" = bash ] || die "error: unsupported shell type \"${2:-}\""
    printf '# bash completion for kubectl %s (fake)\n__start_kubectl() { COMPREPLY=($(compgen -W "apply get drain cordon uncordon" -- "${COMP_WORDS[COMP_CWORD]}")); }\ncomplete -o default -F __start_kubectl kubectl\n' "$VERSION"
    exit 0
fi

kubeconfig=${KUBECONFIG:-$HOME/.kube/config} explicit="" ns=default selector="" output="" noheaders="" file="" raw="" serverside=""
pos=() rest=()
while [ $# -gt 0 ]; do
    case $1 in
    --kubeconfig) kubeconfig=$2; explicit=1; shift ;;
    --kubeconfig=*) kubeconfig=${1#*=}; explicit=1 ;;
    -n | --namespace) ns=$2; shift ;;
    --namespace=*) ns=${1#*=} ;;
    -l | --selector) selector=$2; shift ;;
    --selector=*) selector=${1#*=} ;;
    -o | --output) output=$2; shift ;;
    -o=* | --output=*) output=${1#*=} ;;
    -f | --filename) file=$2; shift ;;
    --filename=*) file=${1#*=} ;;
    --raw) raw=$2; shift ;;
    --no-headers) noheaders=1 ;;
    --server-side) serverside=1 ;;
    --) shift; rest=("$@"); break ;;
    -*) ;;
    *) pos+=("$1") ;;
    esac
    shift
done

if [ ! -f "$kubeconfig" ]; then
    [ -n "$explicit" ] && die "error: stat $kubeconfig: no such file or directory"
    die "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
fi
server=$(sed -n 's/^ *server: *https:\/\///p' "$kubeconfig" | head -n 1)
curl -ksf -o /dev/null --max-time 5 "https://$server/readyz" ||
    die "The connection to the server $server was refused - did you specify the right host or port?"

ready() { [ -f "$SHARED/cni" ] && echo Ready || echo NotReady; }
status() { # NAME
    local s
    s=$(ready)
    grep -qx "$1" "$SHARED/cordoned" 2>/dev/null && s="$s,SchedulingDisabled"
    echo "$s"
}
kver() { # NAME
    local v
    v=$(awk -v n="$1" '$1 == n {print $2}' "$SHARED/kubelet-versions" 2>/dev/null | tail -n 1)
    echo "${v:-v$VERSION}"
}
nodes() { cat "$SHARED/nodes" 2>/dev/null; }

case "${pos[*]:-}" in
"get nodes "* | "get node "* | "get no "*)
    name=${pos[2]}
    line=$(nodes | awk -v n="$name" '$1 == n')
    [ -n "$line" ] || die "Error from server (NotFound): nodes \"$name\" not found"
    [ -n "$noheaders" ] || echo "NAME STATUS ROLES AGE VERSION"
    set -- $line
    r=$2
    [ "$r" = worker ] && r="<none>"
    echo "$1 $(status "$1") $r 5m $(kver "$1")" | column -t
    ;;
"get nodes" | "get node" | "get no")
    [ -n "$noheaders" ] || {
        if [ "$output" = wide ]; then echo "NAME STATUS ROLES AGE VERSION INTERNAL-IP"; elif [ "$output" != name ]; then echo "NAME STATUS ROLES AGE VERSION"; fi
    }
    nodes | while read -r name role addr; do
        r=$role
        [ "$r" = worker ] && r="<none>"
        case $output in
        name) echo "node/$name" ;;
        wide) echo "$name $(status "$name") $r 5m $(kver "$name") $addr" ;;
        *) echo "$name $(status "$name") $r 5m $(kver "$name")" ;;
        esac
    done | column -t
    ;;
apply)
    [ -n "$file" ] || die "error: must specify one of -f and -k"
    if [ "$file" = - ]; then
        dest="$LOG/applied/stdin-$(date +%s%N).yaml"
        cat >"$dest"
        sed 's/^/    /' "$dest" >>"$LOG/calls.log"
    else
        [ -f "$file" ] || die "error: the path \"$file\" does not exist"
        dest="$LOG/applied/$(basename "$file")"
        cp "$file" "$dest"
    fi
    mkdir -p "$SHARED/applied"
    cp "$dest" "$SHARED/applied/"
    verb=created
    [ -n "$serverside" ] && verb=serverside-applied
    # one line per object: kind/name (metadata.name), DaemonSets remembered for rollout
    awk -v verb="$verb" -v ns="$ns" -v ds="$SHARED/daemonsets" '
        function flush() { if (kind != "" && name != "") { print tolower(kind) "/" name " " verb; if (kind == "DaemonSet") print (n == "" ? ns : n) " " name >> ds } kind = ""; name = ""; n = ""; meta = 0 }
        /^---/ { flush(); next }
        /^kind:/ { kind = $2 }
        /^metadata:/ { meta = 1; next }
        meta && /^  name:/ && name == "" { name = $2; gsub(/"/, "", name) }
        meta && /^  namespace:/ { n = $2; gsub(/"/, "", n) }
        meta && /^[^ ]/ { meta = 0 }
        END { flush() }' "$dest"
    if grep -q '^kind: DaemonSet' "$dest"; then touch "$SHARED/cni"; fi
    ;;
"rollout status "*)
    what=${pos[2]}
    name=${what#*/}
    grep -qx "$ns $name" "$SHARED/daemonsets" 2>/dev/null ||
        die "Error from server (NotFound): daemonsets.apps \"$name\" not found"
    echo "daemon set \"$name\" successfully rolled out"
    ;;
"get configmap "* | "get cm "*)
    name=${pos[2]}
    f=$(grep -lx "  name: $name" "$SHARED"/applied/*.yaml 2>/dev/null | xargs -r grep -lx "kind: ConfigMap" |
        xargs -r grep -lx "  namespace: $ns" | tail -n 1)
    [ -n "$f" ] || die "Error from server (NotFound): configmaps \"$name\" not found"
    case $output in
    "jsonpath={.data."*"}")
        key=${output#jsonpath=\{.data.}
        key=${key%\}}
        key=${key//\\./.}
        awk -v k="  $key: |" '$0 == k { on = 1; next } on && /^    / { print substr($0, 5); next } on { exit }' "$f"
        ;;
    *) die "fake kubectl: get configmap only with -o jsonpath={.data.KEY}" ;;
    esac
    ;;
"get pods" | "get pod" | "get po")
    comp=${selector#component=}
    case $comp in
    etcd) list=$(cut -d' ' -f1 "$SHARED/etcd-members" 2>/dev/null) ;;
    kube-apiserver | kube-controller-manager | kube-scheduler) list=$(awk '$2 == "control-plane" {print $1}' "$SHARED/nodes" 2>/dev/null) ;;
    *) list="" ;;
    esac
    if [ "$ns" != kube-system ] || [ -z "$list" ]; then
        echo "No resources found in $ns namespace." >&2
        exit 0
    fi
    {
        [ -n "$noheaders" ] || echo "NAME READY STATUS RESTARTS AGE"
        for n in $list; do echo "$comp-$n 1/1 Running 0 5m"; done
    } | column -t
    ;;
"exec "*)
    pod=${pos[1]}
    member=${pod#etcd-}
    if [ "$ns" != kube-system ] || [ "$pod" = "$member" ] || ! grep -q "^$member " "$SHARED/etcd-members" 2>/dev/null; then
        die "Error from server (NotFound): pods \"$pod\" not found"
    fi
    case " ${rest[*]} " in
    *" member list "*)
        (
            flock 9
            : >"$SHARED/etcd.new"
            while read -r name addr unstarted; do
                id=$(echo -n "$name" | sha256sum | cut -c1-16)
                if [ "${unstarted:-0}" -gt 0 ]; then
                    echo "$id, unstarted, , https://$addr:2380, , false"
                    echo "$name $addr $((unstarted - 1))" >>"$SHARED/etcd.new"
                else
                    echo "$id, started, $name, https://$addr:2380, https://$addr:2379, false"
                    echo "$name $addr 0" >>"$SHARED/etcd.new"
                fi
            done <"$SHARED/etcd-members"
            mv "$SHARED/etcd.new" "$SHARED/etcd-members"
        ) 9>"$SHARED/.lock"
        ;;
    *" member remove "*)
        id=${rest[${#rest[@]}-1]}
        (
            flock 9
            found=""
            : >"$SHARED/etcd.new"
            while read -r name addr unstarted; do
                if [ "$(echo -n "$name" | sha256sum | cut -c1-16)" = "$id" ]; then found=1; else
                    echo "$name $addr ${unstarted:-0}" >>"$SHARED/etcd.new"
                fi
            done <"$SHARED/etcd-members"
            mv "$SHARED/etcd.new" "$SHARED/etcd-members"
            [ -n "$found" ] || die "Error: etcdserver: member not found"
            echo "Member $id removed from cluster $(echo -n cluster | sha256sum | cut -c1-16)"
        ) 9>"$SHARED/.lock"
        ;;
    *" endpoint health "*"--cluster "*)
        while read -r name addr unstarted; do
            [ "${unstarted:-0}" -gt 0 ] ||
                echo "https://$addr:2379 is healthy: successfully committed proposal: took = 2.1ms"
        done <"$SHARED/etcd-members"
        ;;
    *" endpoint health "*) echo "https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 2.1ms" ;;
    *) die "fake kubectl exec: only etcdctl member list, member remove and endpoint health are faked" ;;
    esac
    ;;
"delete node "*)
    name=${pos[2]}
    grep -q "^$name " "$SHARED/nodes" 2>/dev/null || die "Error from server (NotFound): nodes \"$name\" not found"
    (
        flock 9
        grep -v "^$name " "$SHARED/nodes" >"$SHARED/nodes.new"
        mv "$SHARED/nodes.new" "$SHARED/nodes"
        grep -vx "$name" "$SHARED/cordoned" 2>/dev/null >"$SHARED/cordoned.new"
        mv "$SHARED/cordoned.new" "$SHARED/cordoned"
    ) 9>"$SHARED/.lock"
    echo "node \"$name\" deleted"
    ;;
"drain "* | "cordon "* | "uncordon "*)
    name=${pos[1]}
    grep -q "^$name " "$SHARED/nodes" 2>/dev/null || die "Error from server (NotFound): nodes \"$name\" not found"
    (
        flock 9
        grep -vx "$name" "$SHARED/cordoned" 2>/dev/null >"$SHARED/cordoned.new"
        [ "${pos[0]}" = uncordon ] || echo "$name" >>"$SHARED/cordoned.new"
        mv "$SHARED/cordoned.new" "$SHARED/cordoned"
    ) 9>"$SHARED/.lock"
    case ${pos[0]} in
    drain) echo "node/$name cordoned"; echo "node/$name drained" ;;
    *) echo "node/$name ${pos[0]}ed" ;;
    esac
    ;;
diff)
    [ -n "$file" ] || die "error: must specify one of -f and -k"
    [ -f "$file" ] || die "error: the path \"$file\" does not exist"
    cmp -s "$file" "$SHARED/applied/$(basename "$file")" && exit 0
    echo "diff -u -N /tmp/LIVE-000/$(basename "$file") /tmp/MERGED-000/$(basename "$file")"
    exit 1
    ;;
get)
    [ -n "$raw" ] || die "error: you must specify the type of resource to get"
    case $raw in /readyz | /livez | /healthz) echo ok ;; *) die "Error from server (Forbidden): fake kubectl serves /readyz, /livez and /healthz only" ;; esac
    ;;
version)
    echo "Client Version: v$VERSION"
    echo "Kustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3"
    echo "Server Version: v$VERSION"
    ;;
cluster-info)
    echo "Kubernetes control plane is running at https://$server"
    ;;
*)
    die "error: unknown command \"${pos[*]:-}\" for \"kubectl\" (bundle-testbed fake: see the header of $0)"
    ;;
esac
