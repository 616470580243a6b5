#!/bin/sh
# TEST DOUBLE of @TOOL@ (bundle-testbed), installed over /usr/sbin/@TOOL@ inside every
# test host (in the host's overlay root only). Test hosts share the machine's kernel:
# loading modules or turning swap off there would act on the machine itself, so this
# records the call in /var/log/bundle-testbed/@TOOL@.log and succeeds. Not for real
# machines.
mkdir -p /var/log/bundle-testbed
echo "@TOOL@ $*" >>/var/log/bundle-testbed/@TOOL@.log
exit 0
