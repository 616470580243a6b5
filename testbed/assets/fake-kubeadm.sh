#!/bin/bash
# FAKE kubeadm @VERSION@ (bundle-testbed test double, shipped in the test `kubeadm` RPM).
# Not for real machines.
#
# Records every call in /var/log/fake-k8s/calls.log ("kubeadm ARGS"), in the order of the
# whole cluster in /var/lib/fake-k8s-shared/calls.log ("HOST kubeadm ARGS"), and a copy of each
# --config file in /var/log/fake-k8s/configs/<subcommand>-<file name>. Checks its inputs
# and answers like kubeadm:
#   config images pull|list --config F   the control plane images under F's imageRepository
#   init --config F [--upload-certs]     F must exist and set controlPlaneEndpoint; a valid
#                                        bootstrap token and certificateKey if given. Writes
#                                        /etc/kubernetes/{admin.conf,kubelet.conf,pki/ca.crt,
#                                        manifests/*}, starts the fake API server on :6443,
#                                        registers the node, prints the join commands.
#                                        With `etcd.external` in F: the etcd CA and the API
#                                        server's client certificate must exist (kubeadm's
#                                        preflight), are uploaded, and control-plane joins
#                                        download them; no stacked member is registered.
#   init phase upload-certs --upload-certs [--config F | --certificate-key K]  prints the key
#   token create [--print-join-command], token list
#   join --config F | join EP --token T --discovery-token-ca-cert-hash H [--control-plane
#        --certificate-key K]            checks the API answers at EP, the token, the CA hash
#                                        and (control plane) the certificate key against the
#                                        cluster; writes kubelet.conf (and admin.conf, the fake
#                                        API server for masters); registers the node.
#   reset [-f]                           undoes init/join on this host
#   certs renew all                      re-signs every leaf certificate under pki/ with
#                                        the cluster CA for 365 days, as kubeadm renews,
#                                        except those of the etcd CA (pki/etcd/*,
#                                        apiserver-etcd-client) with external etcd: kubeadm
#                                        leaves them to the operator; writes admin.conf anew
#   upgrade plan [V] [--config F]        V (or F's kubernetesVersion) must be this kubeadm's
#                                        version or lower, at most one minor past the
#                                        cluster's; prints the plan naming `kubeadm upgrade
#                                        apply V`
#   upgrade apply [V] [--config F] --yes the same checks; the cluster's version becomes V,
#                                        this master's static pod manifests name V's images
#   upgrade node [--config F]            a master's manifests to the cluster's version (this
#                                        kubeadm must be that version); any node: done
#   version [-o short]
#   completion bash                      a loadable completion script
# Cluster state shared between hosts (the double's "API"): /var/lib/fake-k8s-shared
# (bind-mounted from the testbed): pki/ca.{crt,key}, endpoint, tokens, certificate-key,
# version and image-repository (the cluster's, from init and upgrade apply),
# kubelet-versions ("NAME vX": set at join and by the systemctl double's kubelet restart),
# nodes ("NAME ROLE ADDRESS"), etcd-members ("NAME ADDRESS UNSTARTED": a joining
# master's member is listed `unstarted` by as many `etcdctl member list` answers as the
# file etcd-unstarted-lists says, none without it, so that a test sees an install wait).
set -u
VERSION=@VERSION@
LOG=/var/log/fake-k8s
SHARED=/var/lib/fake-k8s-shared
K=/etc/kubernetes
RUNDIR=/run/fake-k8s
mkdir -p "$LOG/configs" "$RUNDIR"
echo "kubeadm $*" >>"$LOG/calls.log"
[ -d "$SHARED" ] && echo "$(hostname) kubeadm $*" >>"$SHARED/calls.log"

die() {
    echo "$*" >&2
    exit 1
}

# As the real one: a script bash-completion can source.
if [ "${1:-}" = completion ]; then
    [ "${2:-}" = bash ] || die "unsupported shell type \"${2:-}\""
    printf '# bash completion for kubeadm %s (fake)\n__start_kubeadm() { COMPREPLY=($(compgen -W "init join reset upgrade certs" -- "${COMP_WORDS[COMP_CWORD]}")); }\ncomplete -o default -F __start_kubeadm kubeadm\n' "$VERSION"
    exit 0
fi
# first value of KEY: in a YAML file (quoted or not); for list items use ylist
yget() { sed -n -E "s/^[[:space:]]*(- )?$1:[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$/\\2/p" "$2" | head -n 1; }
ylist() { grep -A1 -E "^[[:space:]]*$1:[[:space:]]*$" "$2" | tail -n 1 | sed -E 's/^[[:space:]]*-[[:space:]]*//; s/"//g; s/[[:space:]]*$//'; }
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
rand_alnum() { tr -dc 'a-z0-9' </dev/urandom | head -c "$1"; }
ca_hash() { openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1; }
node_name() { # nodeRegistration.name of config $1, else the hostname
    local n=""
    [ -n "$1" ] && n=$(awk '/^nodeRegistration:/ {f=1; next} f && /^[^ ]/ {f=0} f && /^  name:/ {gsub(/"/, "", $2); print $2; exit}' "$1")
    echo "${n:-$(hostname)}"
}
my_address() { ip -4 -o addr show dev eth0 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}'; }
check_token() { [[ $1 =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "bootstrapTokens[0].token: Invalid value: \"$1\": the bootstrap token \"$1\" was not of the form \"[a-z0-9]{6}.[a-z0-9]{16}\""; }
check_key() { [[ $1 =~ ^[0-9a-f]{64}$ ]] || die "error: invalid certificate key \"$1\": must be 64 hexadecimal characters (32 bytes)"; }
save_config() { [ -n "$2" ] && cp "$2" "$LOG/configs/$1-$(basename "$2")"; }

kubeconfig() { # FILE USER: a kubeconfig for the cluster's endpoint
    local ca
    ca=$(base64 -w0 "$SHARED/pki/ca.crt")
    cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $ca
    server: https://$(cat "$SHARED/endpoint")
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $2
  name: $2@kubernetes
current-context: $2@kubernetes
users:
- name: $2
  user:
    token: fake-$(rand 8)
KC
    chmod 0600 "$1"
}

cluster_version() { cat "$SHARED/version" 2>/dev/null || echo "v$VERSION"; }

write_manifests() { # VERSION: the static pods' manifests, images from the cluster's repository
    local repo tag m
    repo=$(cat "$SHARED/image-repository" 2>/dev/null || echo registry.k8s.io)
    mkdir -p "$K/manifests"
    for m in kube-apiserver kube-controller-manager kube-scheduler etcd; do
        tag=$1
        [ "$m" = etcd ] && tag=3.5.10-0
        printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: kube-system\n# fake static pod (bundle-testbed)\nspec:\n  containers:\n  - name: %s\n    image: %s/%s:%s\n' \
            "$m" "$m" "$repo" "$m" "$tag" >"$K/manifests/$m.yaml"
    done
}

start_apiserver() { # the static pod's stand-in
    mkdir -p "$K/pki" "$K/manifests"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
        -subj /CN=kube-apiserver -keyout "$K/pki/apiserver.key" -out "$K/pki/apiserver.crt" 2>/dev/null
    write_manifests "$(cluster_version)"
    setsid python3 /usr/libexec/fake-k8s/apiserver.py 6443 "$K/pki/apiserver.crt" "$K/pki/apiserver.key" "$VERSION" \
        </dev/null >>"$LOG/apiserver.log" 2>&1 &
    echo $! >"$RUNDIR/apiserver.pid"
    for _ in $(seq 50); do
        curl -ksf -o /dev/null --max-time 1 https://127.0.0.1:6443/readyz && return 0
        sleep 0.1
    done
    die "the fake API server did not start (see $LOG/apiserver.log)"
}

register() { # NAME ROLE [JOIN]: the node (and its etcd member) in the shared registry
    local addr unstarted=0
    addr=$(my_address)
    [ -n "${3:-}" ] && unstarted=$(cat "$SHARED/etcd-unstarted-lists" 2>/dev/null || echo 0)
    (
        flock 9
        grep -v "^$1 " "$SHARED/nodes" 2>/dev/null >"$SHARED/nodes.new"
        echo "$1 $2 $addr" >>"$SHARED/nodes.new"
        mv "$SHARED/nodes.new" "$SHARED/nodes"
        # a node that joins is a new Node object: schedulable
        grep -vx "$1" "$SHARED/cordoned" 2>/dev/null >"$SHARED/cordoned.new"
        mv "$SHARED/cordoned.new" "$SHARED/cordoned"
        grep -v "^$1 " "$SHARED/kubelet-versions" 2>/dev/null >"$SHARED/kubelet-versions.new"
        echo "$1 $(kubelet --version 2>/dev/null | awk '{print $2}')" >>"$SHARED/kubelet-versions.new"
        mv "$SHARED/kubelet-versions.new" "$SHARED/kubelet-versions"
        if [ "$2" = control-plane ] && [ ! -d "$SHARED/pki/external-etcd" ]; then
            grep -v "^$1 " "$SHARED/etcd-members" 2>/dev/null >"$SHARED/etcd.new"
            echo "$1 $addr $unstarted" >>"$SHARED/etcd.new"
            mv "$SHARED/etcd.new" "$SHARED/etcd-members"
        fi
    ) 9>"$SHARED/.lock"
}

join_commands() { # TOKEN CERTKEY(optional)
    local ep hash
    ep=$(cat "$SHARED/endpoint")
    hash=$(ca_hash "$SHARED/pki/ca.crt")
    if [ -n "$2" ]; then
        cat <<EOT
You can now join any number of the control-plane node running the following command on each as root:

  kubeadm join $ep --token $1 \\
	--discovery-token-ca-cert-hash sha256:$hash \\
	--control-plane --certificate-key $2

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!
As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use
"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.
EOT
    else
        cat <<EOT
You can now join any number of control-plane nodes by copying certificate authorities
and service account keys on each node and then running the following as root:

  kubeadm join $ep --token $1 \\
	--discovery-token-ca-cert-hash sha256:$hash \\
	--control-plane
EOT
    fi
    cat <<EOT

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join $ep --token $1 \\
	--discovery-token-ca-cert-hash sha256:$hash
EOT
}

minor() { echo "${1#v}" | cut -d. -f1,2; }
check_target() { # CURRENT TARGET: as kubeadm's upgrade version checks
    local cur=${1#v} tgt=${2#v} cm tm
    [ "$(printf '%s\n%s\n' "$tgt" "$VERSION" | sort -V | tail -n 1)" = "$VERSION" ] ||
        die "[upgrade/version] FATAL: the --version argument is invalid due to these errors:

	- Specified version to upgrade to \"$2\" is higher than the kubeadm version \"v$VERSION\". Upgrade kubeadm first using the tool you used to install kubeadm"
    [ "$(printf '%s\n%s\n' "$tgt" "$cur" | sort -V | head -n 1)" = "$cur" ] ||
        die "[upgrade/version] FATAL: Specified version to upgrade to \"$2\" is lower than the cluster version \"$1\". Downgrades are not supported yet"
    cm=$(minor "$cur" | cut -d. -f2) tm=$(minor "$tgt" | cut -d. -f2)
    [ $((tm - cm)) -le 1 ] ||
        die "[upgrade/version] FATAL: Specified version to upgrade to \"$2\" is too high; kubeadm can upgrade only 1 minor version at a time"
}

# --- arguments
yes="" config="" upload="" cp="" ckey="" token="" hash="" print="" force="" output="" cpe=""
pos=()
while [ $# -gt 0 ]; do
    case $1 in
    --config) config=$2; shift ;;
    --config=*) config=${1#*=} ;;
    --upload-certs) upload=1 ;;
    --control-plane) cp=1 ;;
    --certificate-key) ckey=$2; shift ;;
    --certificate-key=*) ckey=${1#*=} ;;
    --token) token=$2; shift ;;
    --token=*) token=${1#*=} ;;
    --discovery-token-ca-cert-hash) hash=$2; shift ;;
    --discovery-token-ca-cert-hash=*) hash=${1#*=} ;;
    --control-plane-endpoint) cpe=$2; shift ;;
    --control-plane-endpoint=*) cpe=${1#*=} ;;
    --print-join-command) print=1 ;;
    --ttl | --description | --groups | --usages | --kubeconfig) shift ;; # flags with a value
    --ttl=* | --description=* | --groups=* | --usages=* | --kubeconfig=*) ;;
    -f | --force) force=1 ;;
    -y | --yes) yes=1 ;;
    -o | --output) output=$2; shift ;;
    -o=* | --output=*) output=${1#*=} ;;
    -*) ;;
    *) pos+=("$1") ;;
    esac
    shift
done
[ -n "$config" ] && [ ! -f "$config" ] && die "open $config: no such file or directory"
cmd="${pos[*]:-}"

case $cmd in
"config images pull" | "config images list")
    repo=registry.k8s.io
    if [ -n "$config" ]; then
        save_config images "$config"
        r=$(yget imageRepository "$config")
        [ -n "$r" ] && repo=$r
    fi
    for i in kube-apiserver:v$VERSION kube-controller-manager:v$VERSION kube-scheduler:v$VERSION \
        kube-proxy:v$VERSION coredns:v1.11.1 pause:3.9 etcd:3.5.10-0; do
        if [ "$cmd" = "config images pull" ]; then echo "[config/images] Pulled $repo/$i"; else echo "$repo/$i"; fi
    done
    ;;
init)
    save_config init "$config"
    if [ -n "$config" ]; then
        cpe=$(yget controlPlaneEndpoint "$config")
        [ -n "$cpe" ] || die "$config lacks controlPlaneEndpoint: this HA fake needs the load-balanced endpoint"
        [ -n "$token" ] || token=$(yget token "$config")
        [ -n "$ckey" ] || ckey=$(yget certificateKey "$config")
    fi
    [ -n "$cpe" ] || die "no controlPlaneEndpoint (--config FILE with controlPlaneEndpoint)"
    [ -n "$token" ] && check_token "$token"
    [ -n "$ckey" ] && check_key "$ckey"
    [ -n "$token" ] || token="$(rand_alnum 6).$(rand_alnum 16)"
    [ -n "$ckey" ] || ckey=$(rand 32)
    echo "[init] Using Kubernetes version: v$VERSION"
    echo "[preflight] Running pre-flight checks"
    errs=""
    for f in "$K/manifests/kube-apiserver.yaml" "$K/admin.conf" "$K/kubelet.conf"; do
        [ -e "$f" ] && errs="$errs\t[ERROR FileAvailable-${f//\//-}]: $f already exists\n"
    done
    ss -Htln 2>/dev/null | awk '{print $4}' | grep -q ':6443$' && errs="$errs\t[ERROR Port-6443]: Port 6443 is in use\n"
    if [ -n "$errs" ]; then
        printf "error execution phase preflight: [preflight] Some fatal errors occurred:\n$errs" >&2
        exit 1
    fi
    mkdir -p "$SHARED/pki" "$K/pki/etcd"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=kubernetes -keyout "$SHARED/pki/ca.key" -out "$SHARED/pki/ca.crt" 2>/dev/null
    echo "$cpe" >"$SHARED/endpoint"
    echo "v$VERSION" >"$SHARED/version"
    r=$(yget imageRepository "$config")
    echo "${r:-registry.k8s.io}" >"$SHARED/image-repository"
    echo "$token" >"$SHARED/tokens"
    : >"$SHARED/nodes"
    : >"$SHARED/etcd-members"
    rm -f "$SHARED/cni" "$SHARED/daemonsets" "$SHARED/certificate-key"
    [ -n "$upload" ] && echo "$ckey" >"$SHARED/certificate-key"
    cp "$SHARED/pki/ca.crt" "$SHARED/pki/ca.key" "$K/pki/"
    rm -rf "$SHARED/pki/external-etcd"
    if grep -qE '^  external:' "$config"; then
        # External etcd, as kubeadm: its CA and the API server's client certificate
        # must be there already; they are uploaded with the others.
        for f in etcd/ca.crt apiserver-etcd-client.crt apiserver-etcd-client.key; do
            [ -f "$K/pki/$f" ] || die "error execution phase preflight: [preflight] Some fatal errors occurred: [ERROR ExternalEtcdClientCertificates]: $K/pki/$f doesn't exist"
        done
        mkdir -p "$SHARED/pki/external-etcd"
        cp "$K/pki/etcd/ca.crt" "$K/pki/apiserver-etcd-client.crt" "$K/pki/apiserver-etcd-client.key" "$SHARED/pki/external-etcd/"
    else
        cp "$SHARED/pki/ca.crt" "$K/pki/etcd/ca.crt"
    fi
    echo "[certs] Using certificateDir folder \"$K/pki\""
    kubeconfig "$K/admin.conf" kubernetes-admin
    kubeconfig "$K/kubelet.conf" "system:node:$(node_name "$config")"
    echo "[kubeconfig] Writing \"admin.conf\" kubeconfig file"
    echo "[kubeconfig] Writing \"kubelet.conf\" kubeconfig file"
    start_apiserver
    echo "[control-plane] Creating static Pod manifest for \"kube-apiserver\""
    register "$(node_name "$config")" control-plane
    [ -n "$upload" ] && printf '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace\n[upload-certs] Using certificate key:\n%s\n' "$ckey"
    echo "[bootstrap-token] Using token: $token"
    echo
    echo "Your Kubernetes control-plane has initialized successfully!"
    echo
    echo "To start using your cluster, you need to run the following as a regular user:"
    echo
    echo "  mkdir -p \$HOME/.kube"
    echo "  sudo cp -i /etc/kubernetes/admin.conf \$HOME/.kube/config"
    echo "  sudo chown \$(id -u):\$(id -g) \$HOME/.kube/config"
    echo
    echo "Alternatively, if you are the root user, you can run:"
    echo
    echo "  export KUBECONFIG=/etc/kubernetes/admin.conf"
    echo
    echo "You should now deploy a pod network to the cluster."
    echo "Run \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:"
    echo "  https://kubernetes.io/docs/concepts/cluster-administration/addons/"
    echo
    join_commands "$token" "${upload:+$ckey}"
    ;;
"init phase upload-certs")
    [ -n "$upload" ] || die "error: --upload-certs is required for this phase"
    [ -f "$K/admin.conf" ] || die "failed to load admin kubeconfig: open $K/admin.conf: no such file or directory"
    save_config upload-certs "$config"
    [ -n "$ckey" ] || { [ -n "$config" ] && ckey=$(yget certificateKey "$config"); }
    [ -n "$ckey" ] && check_key "$ckey"
    [ -n "$ckey" ] || ckey=$(rand 32)
    echo "$ckey" >"$SHARED/certificate-key"
    echo "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
    echo "[upload-certs] Using certificate key:"
    echo "$ckey"
    ;;
"token create" | "token create "*)
    [ -f "$K/admin.conf" ] || die "failed to load admin kubeconfig: open $K/admin.conf: no such file or directory"
    t=${pos[2]:-$(rand_alnum 6).$(rand_alnum 16)}
    check_token "$t"
    echo "$t" >>"$SHARED/tokens"
    if [ -n "$print" ]; then
        echo "kubeadm join $(cat "$SHARED/endpoint") --token $t --discovery-token-ca-cert-hash sha256:$(ca_hash "$SHARED/pki/ca.crt") "
    else
        echo "$t"
    fi
    ;;
"token list")
    [ -f "$K/admin.conf" ] || die "failed to load admin kubeconfig: open $K/admin.conf: no such file or directory"
    echo "TOKEN                     TTL         EXPIRES   USAGES                   DESCRIPTION   EXTRA GROUPS"
    while read -r t; do echo "$t   23h   -   authentication,signing   <none>   system:bootstrappers:kubeadm:default-node-token"; done <"$SHARED/tokens"
    ;;
join | "join "*)
    save_config join "$config"
    ep=${pos[1]:-}
    if [ -n "$config" ]; then
        ep=$(yget apiServerEndpoint "$config")
        token=$(yget token "$config")
        hash=$(ylist caCertHashes "$config")
        grep -q '^controlPlane:' "$config" && cp=1
        ckey=$(yget certificateKey "$config")
    fi
    [ -n "$ep" ] || die "discovery: Invalid value: \"\": bootstrapToken or file must be set"
    check_token "$token"
    [ -n "$cp" ] && check_key "$ckey"
    echo "[preflight] Running pre-flight checks"
    [ -e "$K/kubelet.conf" ] && die "error execution phase preflight: [preflight] Some fatal errors occurred:
	[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: $K/kubelet.conf already exists"
    curl -ksf -o /dev/null --max-time 5 "https://$ep/readyz" ||
        die "error execution phase preflight: couldn't validate the identity of the API Server: Get \"https://$ep/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": dial tcp $ep: connect: connection refused"
    [ -f "$SHARED/pki/ca.crt" ] || die "error execution phase preflight: couldn't validate the identity of the API Server: configmaps \"cluster-info\" not found"
    grep -qx "$token" "$SHARED/tokens" 2>/dev/null ||
        die "error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"${token%%.*}\""
    want="sha256:$(ca_hash "$SHARED/pki/ca.crt")"
    [ "$hash" = "$want" ] ||
        die "error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"$want\" are pinned"
    name=$(node_name "$config")
    mkdir -p "$K/pki/etcd"
    cp "$SHARED/pki/ca.crt" "$K/pki/ca.crt"
    if [ -n "$cp" ]; then
        [ -f "$SHARED/certificate-key" ] && [ "$ckey" = "$(cat "$SHARED/certificate-key")" ] ||
            die "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding certificate key: failed to decrypt data: cipher: message authentication failed"
        echo "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
        cp "$SHARED/pki/ca.key" "$K/pki/ca.key"
        if [ -d "$SHARED/pki/external-etcd" ]; then
            cp "$SHARED/pki/external-etcd/ca.crt" "$K/pki/etcd/ca.crt"
            cp "$SHARED/pki/external-etcd/apiserver-etcd-client.crt" "$SHARED/pki/external-etcd/apiserver-etcd-client.key" "$K/pki/"
        else
            cp "$SHARED/pki/ca.crt" "$K/pki/etcd/ca.crt"
        fi
        kubeconfig "$K/admin.conf" kubernetes-admin
        start_apiserver
    fi
    kubeconfig "$K/kubelet.conf" "system:node:$name"
    register "$name" "$([ -n "$cp" ] && echo control-plane || echo worker)" join
    echo "[kubelet-start] Starting the kubelet"
    echo
    echo "This node has joined the cluster$([ -n "$cp" ] && echo " and a new control plane instance was created"):"
    echo "* Certificate signing request was sent to apiserver and a response was received."
    echo "* The Kubelet was informed of the new secure connection details."
    echo
    echo "Run 'kubectl get nodes' on the control-plane to see this node join the cluster."
    ;;
reset)
    if [ -z "$force" ]; then
        printf '[reset] Are you sure you want to proceed? [y/N]: '
        read -r answer || answer=""
        [ "$answer" = y ] || [ "$answer" = Y ] || die "error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue"
    fi
    if [ -f "$RUNDIR/apiserver.pid" ]; then
        kill "$(cat "$RUNDIR/apiserver.pid")" 2>/dev/null
        rm -f "$RUNDIR/apiserver.pid"
    fi
    name=$(hostname)
    [ -f "$K/kubelet.conf" ] && name=$(sed -n 's/^    user: system:node:\(.*\)$/\1/p' "$K/kubelet.conf" | head -n 1)
    (
        flock 9
        for f in nodes etcd-members; do
            [ -f "$SHARED/$f" ] && grep -v "^$name " "$SHARED/$f" >"$SHARED/$f.new" && mv "$SHARED/$f.new" "$SHARED/$f"
            [ -f "$SHARED/$f.new" ] && mv "$SHARED/$f.new" "$SHARED/$f"
        done
    ) 9>"$SHARED/.lock"
    echo "[reset] Removing info for node \"$name\" from the ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace"
    rm -rf "$K/manifests" "$K/pki" "$K/admin.conf" "$K/super-admin.conf" "$K/kubelet.conf" \
        "$K/controller-manager.conf" "$K/scheduler.conf" /var/lib/etcd
    echo "[reset] Deleted contents of the etcd data directory: /var/lib/etcd"
    echo "[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]"
    ;;
"certs renew all")
    [ -f "$K/pki/ca.key" ] || die "error execution phase certs: failed to load the certificate authority: open $K/pki/ca.key: no such file or directory"
    for f in "$K"/pki/*.crt "$K"/pki/etcd/*.crt; do
        [ -f "$f" ] || continue
        case $f in "$K/pki/ca.crt" | "$K/pki/front-proxy-ca.crt" | "$K/pki/etcd/ca.crt") continue ;; esac
        case $f in "$K"/pki/etcd/* | "$K/pki/apiserver-etcd-client.crt")
            [ -d "$SHARED/pki/external-etcd" ] && continue
            ;;
        esac
        key=${f%.crt}.key
        cn=$(openssl x509 -noout -subject -nameopt multiline -in "$f" | sed -n 's/^ *commonName *= *//p')
        [ -f "$key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
        openssl req -new -key "$key" -subj "/CN=${cn:-$(basename "${f%.crt}")}" -out "$RUNDIR/renew.csr" 2>/dev/null &&
            openssl x509 -req -in "$RUNDIR/renew.csr" -CA "$K/pki/ca.crt" -CAkey "$K/pki/ca.key" -days 365 \
                -out "$f" 2>/dev/null || die "failed to renew $f"
        echo "certificate $(basename "${f%.crt}") renewed"
    done
    if [ -f "$K/admin.conf" ]; then
        kubeconfig "$K/admin.conf" kubernetes-admin
        echo "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed"
    fi
    echo
    echo "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates."
    ;;
"upgrade plan" | "upgrade plan "* | "upgrade apply" | "upgrade apply "*)
    sub=${pos[1]}
    save_config "upgrade-$sub" "$config"
    target=${pos[2]:-}
    [ -z "$target" ] && [ -n "$config" ] && target=$(yget kubernetesVersion "$config")
    [ -n "$target" ] || die "[upgrade/version] FATAL: missing version argument or kubernetesVersion in --config"
    [ -f "$K/admin.conf" ] || die "[upgrade/init config] FATAL: failed to load admin kubeconfig: open $K/admin.conf: no such file or directory"
    check_target "$(cluster_version)" "$target"
    if [ "$sub" = plan ]; then
        echo "[upgrade/versions] Cluster version: $(cluster_version)"
        echo "[upgrade/versions] kubeadm version: v$VERSION"
        echo
        echo "Upgrade to the latest version in the v$(minor "$target") series:"
        echo
        echo "COMPONENT                 NODE      CURRENT   TARGET"
        echo "kube-apiserver            $(hostname)  $(cluster_version)   $target"
        echo
        echo "You can now apply the upgrade by executing the following command:"
        echo
        printf '\tkubeadm upgrade apply %s\n' "$target"
        exit 0
    fi
    [ -n "$yes" ] || [ -n "$force" ] || die "[upgrade] won't proceed; the user didn't answer (Y|y) in order to continue"
    [ -f "$K/manifests/kube-apiserver.yaml" ] || die "[upgrade/apply] FATAL: this node is not a control plane node"
    echo "$target" >"$SHARED/version"
    write_manifests "$target"
    echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$target\". Enjoy!"
    ;;
"upgrade node")
    save_config upgrade-node "$config"
    [ -f "$K/kubelet.conf" ] || die "[upgrade] FATAL: this node has not joined a cluster ($K/kubelet.conf is missing)"
    if [ -f "$K/manifests/kube-apiserver.yaml" ]; then
        v=$(cluster_version)
        [ "$v" = "v$VERSION" ] || die "[upgrade/node] FATAL: the cluster runs $v but this kubeadm is v$VERSION: install kubeadm ${v#v} first"
        write_manifests "$v"
        echo "[upgrade] The control plane instance for this node was successfully upgraded!"
    fi
    echo "[upgrade] The configuration for this node was successfully upgraded!"
    echo "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
    ;;
version)
    if [ "$output" = short ]; then echo "v$VERSION"; else
        echo "kubeadm version: &version.Info{Major:\"${VERSION%%.*}\", Minor:\"$(echo "$VERSION" | cut -d. -f2)\", GitVersion:\"v$VERSION\", GitTreeState:\"clean\", GoVersion:\"go1.21.7\", Compiler:\"gc\", Platform:\"linux/amd64\"}"
    fi
    ;;
*)
    die "unknown command \"${pos[0]:-}\" for \"kubeadm\" (bundle-testbed fake: see the header of $0)"
    ;;
esac
