#!/bin/sh
# Test double (bundle-testbed): `uname` on a test host standing in for an arm64
# machine. The hosts share the machine's x86_64 kernel, so the real `uname -m` cannot
# say aarch64; this answers the machine-hardware questions (-m, -p, -i) as an arm64
# host's uname does and hands everything else to the machine's uname. dnf does not ask
# uname (it reads the kernel's answer itself): the same host's /etc/dnf/dnf.conf says
# `arch=aarch64` and `ignorearch=True` (see `TestCluster::pose_as_aarch64`).
case "$*" in
    -m|-p|-i) echo aarch64 ;;
    *) exec /usr/bin/uname "$@" ;;
esac
