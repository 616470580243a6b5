#!/bin/bash
# bundle-testbed: PID 1 of a test host (inside its chroot). Starts sshd and reaps the
# orphans of the daemons tests start (haproxy, keepalived, ...), so that a stopped
# daemon does not linger as a zombie.
mkdir -p /run/sshd /run/bundle-testbed /var/log/bundle-testbed
/usr/sbin/sshd -D -f /etc/ssh/bundle-testbed/sshd_config -E /var/log/bundle-testbed/sshd.log &
echo $! >/run/bundle-testbed/sshd.pid
trap 'exit 0' TERM
while :; do
    wait -n 2>/dev/null || sleep 0.5
done
