#!/bin/bash
# bundle-testbed: builds one test host and becomes its PID 1.
#
# Runs inside the host's network namespace, under
# `unshare --mount --uts --pid --fork --kill-child`: a private mount table, hostname and
# PID namespace. Mounts an overlay of the machine's own root (everything the host writes
# lands in $H/up), proc, /dev, a tmpfs /run, a sysfs view with a per-host product_uuid and
# the fake-k8s shared folder, sets the hostname, then chroots into the overlay and execs
# the host's init (which starts sshd). Killing the unshare process ends every process of
# the host (the kernel ends a PID namespace with its init).
#
# Arguments: HOST_DIR HOSTNAME SHARED_DIR
set -eu
H=$1 NAME=$2 SHARED=$3
R=$H/root
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=/,upperdir=$H/up,workdir=$H/work" "$R"
mount -t proc proc "$R/proc"
# Machine-wide sysctls read-only; net.* belongs to this network namespace and stays
# writable (as containers do it).
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
# /sys: a read-only view of this network namespace's sysfs (mounted by `ip netns exec`)
# through a tmpfs, so that /sys/class/dmi/id/product_uuid differs between hosts as on
# real machines. Machine-wide knobs (/sys/fs, /sys/kernel, ...) are left out.
mount -t tmpfs -o mode=0755 tmpfs "$R/sys"
ro_bind() {
    mkdir -p "$2"
    mount --bind "$1" "$2"
    mount -o remount,bind,ro "$2"
}
for b in devices bus dev block module; do
    [ -d "/sys/$b" ] && ro_bind "/sys/$b" "$R/sys/$b"
done
for d in /sys/class/*; do
    b=${d##*/}
    [ "$b" = dmi ] && continue
    ro_bind "$d" "$R/sys/class/$b"
done
mkdir -p "$R/sys/class/dmi/id"
cp "$H/product_uuid" "$R/sys/class/dmi/id/product_uuid"
mount -o remount,ro "$R/sys"
# The fake-k8s shared folder (part of the kubeadm/kubectl doubles: node registry).
mkdir -p "$R/var/lib/fake-k8s-shared"
mount --bind "$SHARED" "$R/var/lib/fake-k8s-shared"
hostname "$NAME"
exec chroot "$R" /usr/local/lib/bundle-testbed/init
