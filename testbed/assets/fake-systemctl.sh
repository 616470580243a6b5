#!/bin/bash
# TEST DOUBLE of systemctl, installed by bundle-testbed on its test hosts (which have no
# systemd: their PID 1 is the testbed's init). It is the only service-manager double
# issue 6 allows. Not for real machines.
#
# - haproxy, keepalived and containerd really run in this host's namespaces (containerd
#   with its default root /var/lib/containerd on the host's overlay and state in the
#   host's /run; only the fake crictl talks to it): start/restart (and
#   `enable --now`) launch them as the packaged units would, with pid files under
#   /run/fake-systemd; stop sends SIGTERM (SIGKILL after 5 s); is-active answers from the
#   pid's liveness; reload is the units' ExecReload (keepalived: SIGHUP; haproxy: a new
#   process over the old with -sf).
# - A unit file in /etc/systemd/system (the units `bundle install` writes, such as
#   bundle-repo.service) runs its ExecStart= line in the background the same way, in its
#   WorkingDirectory=.
# - Every other unit only has its state recorded: start/restart make it "active" until
#   stop or a host restart (/run is a tmpfs), enable/disable make it (not) "enabled".
# - Every call is appended to /var/log/fake-systemd/calls.log; daemon-reload and unknown
#   verbs succeed.
LOG=/var/log/fake-systemd
RUN=/run/fake-systemd
ENABLED=/var/lib/fake-systemd/enabled
mkdir -p "$LOG" "$RUN" "$ENABLED"
echo "systemctl $*" >>"$LOG/calls.log"

quiet= now=
args=()
for a in "$@"; do
    case $a in
    -q | --quiet) quiet=1 ;;
    --now) now=1 ;;
    -*) ;;
    *) args+=("$a") ;;
    esac
done
verb=${args[0]:-list-units}
units=("${args[@]:1}")

say() { [ -n "$quiet" ] || echo "$@"; }

# The fake cluster learns a kubelet's version when it (re)starts, as the API server
# learns it from the node's status; the restart goes into the cluster's call log.
kubelet_started() {
    local shared=/var/lib/fake-k8s-shared v
    [ -d "$shared" ] && command -v kubelet >/dev/null || return 0
    v=$(kubelet --version 2>/dev/null | awk '{print $2}')
    (
        flock 9
        grep -v "^$(hostname) " "$shared/kubelet-versions" 2>/dev/null >"$shared/kubelet-versions.new"
        echo "$(hostname) $v" >>"$shared/kubelet-versions.new"
        mv "$shared/kubelet-versions.new" "$shared/kubelet-versions"
    ) 9>"$shared/.lock"
    echo "$(hostname) systemctl $verb kubelet ($v)" >>"$shared/calls.log"
}
name() { local u=${1%.service}; echo "$u"; }

pid_alive() {
    local pid
    pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    # a zombie is not running
    ! awk '{ sub(/^.*\) /, ""); exit ($1 == "Z") ? 0 : 1 }' "/proc/$pid/stat"
}

unit_file() {
    local f=/etc/systemd/system/$1.service
    [ -f "$f" ] && grep -q '^ExecStart=' "$f" && echo "$f"
}

is_active() {
    case $1 in
    haproxy | keepalived | containerd) pid_alive "$1" ;;
    *)
        if [ -n "$(unit_file "$1")" ]; then pid_alive "$1"; else [ -e "$RUN/$1.active" ]; fi
        ;;
    esac
}

wait_pidfile() { # unit: wait up to 5 s for a live pid
    for _ in $(seq 50); do
        pid_alive "$1" && return 0
        sleep 0.1
    done
    echo "Job for $1.service failed because the control process exited with error code." >&2
    echo "See \"$LOG/$1.log\" for details." >&2
    return 1
}

start() {
    local u=$1 f
    is_active "$u" && return 0
    [ "$u" = kubelet ] && kubelet_started
    case $u in
    haproxy)
        # as haproxy.service: check the configuration, then run it (-D: daemon)
        haproxy -c -q -f /etc/haproxy/haproxy.cfg >>"$LOG/haproxy.log" 2>&1 || {
            echo "Job for haproxy.service failed: haproxy -c rejected /etc/haproxy/haproxy.cfg (see $LOG/haproxy.log)" >&2
            return 1
        }
        rm -f "$RUN/haproxy.pid"
        # systemd would start it with a hard limit of 524288 open files; this machine's
        # is lower and cannot be raised (no CAP_SYS_RESOURCE), and haproxy refuses a
        # global maxconn it cannot back with file descriptors: -n caps maxconn to fit.
        local fds
        fds=$(ulimit -Hn)
        [ "$fds" = unlimited ] && fds=524288
        setsid haproxy -D -n $(((fds - 100) / 2)) -f /etc/haproxy/haproxy.cfg -p "$RUN/haproxy.pid" \
            </dev/null >>"$LOG/haproxy.log" 2>&1
        wait_pidfile haproxy
        ;;
    keepalived)
        # as keepalived.service, in the foreground (-n) of a detached session
        rm -f "$RUN/keepalived.pid" "$RUN/keepalived-vrrp.pid"
        setsid keepalived -n -l -D -P -f /etc/keepalived/keepalived.conf \
            -p "$RUN/keepalived.pid" -r "$RUN/keepalived-vrrp.pid" \
            </dev/null >>"$LOG/keepalived.log" 2>&1 &
        # keepalived writes its pid file itself (and refuses to start if it names a
        # live process, so it must not be written here)
        wait_pidfile keepalived
        ;;
    containerd)
        # as containerd.service (Type=notify: ready once its socket answers)
        setsid containerd --config /etc/containerd/config.toml \
            </dev/null >>"$LOG/containerd.log" 2>&1 &
        echo $! >"$RUN/containerd.pid"
        for _ in $(seq 100); do
            [ -S /run/containerd/containerd.sock ] && break
            pid_alive containerd || break
            sleep 0.1
        done
        wait_pidfile containerd
        ;;
    *)
        f=$(unit_file "$u")
        if [ -n "$f" ]; then
            local cmd dir
            cmd=$(sed -n 's/^ExecStart=-\{0,1\}//p' "$f" | head -n 1)
            dir=$(sed -n 's/^WorkingDirectory=//p' "$f" | head -n 1)
            setsid sh -c "cd \"\$0\" && exec $cmd" "${dir:-/}" </dev/null >>"$LOG/$u.log" 2>&1 &
            echo $! >"$RUN/$u.pid"
            sleep 0.2
            wait_pidfile "$u"
        else
            touch "$RUN/$u.active"
        fi
        ;;
    esac
}

# As the packaged units' ExecReload: keepalived re-reads its configuration on SIGHUP
# (the VIP stays where it is); haproxy checks the new one and starts over it with -sf,
# the old process finishing its connections. Other units restart.
reload() {
    local u=$1 pid
    pid=$(cat "$RUN/$u.pid" 2>/dev/null)
    case $u in
    keepalived)
        [ -n "$pid" ] && pid_alive keepalived || { start keepalived; return; }
        keepalived -t -f /etc/keepalived/keepalived.conf >>"$LOG/keepalived.log" 2>&1 || {
            echo "Job for keepalived.service failed: keepalived -t rejected /etc/keepalived/keepalived.conf" >&2
            return 1
        }
        kill -HUP "$pid"
        ;;
    haproxy)
        [ -n "$pid" ] && pid_alive haproxy || { start haproxy; return; }
        haproxy -c -q -f /etc/haproxy/haproxy.cfg >>"$LOG/haproxy.log" 2>&1 || {
            echo "Job for haproxy.service failed: haproxy -c rejected /etc/haproxy/haproxy.cfg (see $LOG/haproxy.log)" >&2
            return 1
        }
        local fds
        fds=$(ulimit -Hn)
        [ "$fds" = unlimited ] && fds=524288
        setsid haproxy -D -n $(((fds - 100) / 2)) -f /etc/haproxy/haproxy.cfg -p "$RUN/haproxy.pid" \
            -sf "$pid" </dev/null >>"$LOG/haproxy.log" 2>&1
        wait_pidfile haproxy
        ;;
    *)
        stop "$u"
        start "$u"
        ;;
    esac
}

stop() {
    local u=$1 pid
    rm -f "$RUN/$u.active"
    pid=$(cat "$RUN/$u.pid" 2>/dev/null) || return 0
    if pid_alive "$u"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do
            pid_alive "$u" || break
            sleep 0.1
        done
        pid_alive "$u" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$RUN/$u.pid" "$RUN/$u-vrrp.pid"
    return 0
}

rc=0
case $verb in
start | restart | try-restart | reload-or-restart | reload | stop | enable | disable | is-active | is-enabled | is-failed | status | mask | unmask) ;;
*)
    # daemon-reload, reset-failed, list-units, ...: recorded, nothing to do
    exit 0
    ;;
esac
for u in "${units[@]}"; do
    u=$(name "$u")
    case $verb in
    start) start "$u" || rc=1 ;;
    restart | try-restart)
        stop "$u"
        start "$u" || rc=1
        ;;
    reload | reload-or-restart) reload "$u" || rc=1 ;;
    stop) stop "$u" ;;
    enable)
        touch "$ENABLED/$u"
        [ -n "$now" ] && { start "$u" || rc=1; }
        ;;
    disable)
        rm -f "$ENABLED/$u"
        [ -n "$now" ] && stop "$u"
        ;;
    mask | unmask) ;;
    is-active)
        if is_active "$u"; then say active; else
            say inactive
            rc=3
        fi
        ;;
    is-failed)
        say inactive
        rc=1
        ;;
    is-enabled)
        if [ -e "$ENABLED/$u" ]; then say enabled; else
            say disabled
            rc=1
        fi
        ;;
    status)
        if is_active "$u"; then
            say "● $u.service - $u (bundle-testbed systemctl double)"
            say "     Active: active (running); Main PID: $(cat "$RUN/$u.pid" 2>/dev/null || echo -)"
        else
            say "○ $u.service - $u (bundle-testbed systemctl double)"
            say "     Active: inactive (dead)"
            rc=3
        fi
        ;;
    esac
done
exit $rc
