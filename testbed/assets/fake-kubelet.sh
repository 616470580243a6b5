#!/bin/bash
# FAKE kubelet @VERSION@ (bundle-testbed test double, shipped in the test `kubelet` RPM).
# Not for real machines. Records its arguments in /var/log/fake-k8s/calls.log; answers
# --version; otherwise does nothing (no pods run on test hosts: the fake kubeadm starts
# the fake API server itself).
mkdir -p /var/log/fake-k8s
echo "kubelet $*" >>/var/log/fake-k8s/calls.log
case " $* " in
*" --version "* | *" --version=true "*) echo "Kubernetes v@VERSION@" ;;
esac
exit 0
