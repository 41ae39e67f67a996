mount --bind /tmp/ctrdbg/netd /etc/cni/net.d && mount --bind /tmp/ctrdbg/bin /opt/cni/bin && mount -t tmpfs tmpfs /var/lib/cni || exit 1
ctr --address /tmp/ctrdbg/sock run --rm --cni --null-io --pid-file /tmp/ctrdbg/pid --rootfs /tmp/ctrdbg/rootfs c1 /bin/sleep 3600 &
while [ ! -s /tmp/ctrdbg/pid ]; do sleep 0.2; done
pid=$(cat /tmp/ctrdbg/pid); nsenter --net=/proc/$pid/ns/net ip -j addr show | head -c 600; echo
ctr --address /tmp/ctrdbg/sock task ls; ctr --address /tmp/ctrdbg/sock task ls -q
ctr --address /tmp/ctrdbg/sock task kill -s SIGKILL c1
wait; echo "ctr rc=$?"
ctr --address /tmp/ctrdbg/sock container ls -q
