# tests/test_systemd_boot.py, boot 1 (tests/vm/testbed boot-systemd --setup): run in the guest's
# overlay root after `dpkg -i`, before systemd starts.
# The config (both igb PFs by PCI address, 7 VFs each, derived MACs, a fixed host key), the daemon
# enabled as docs/install-debian.md says, and the second PF's driver late: its driver_override
# keeps igb off it until pyvfmac-testbed-late-pf.service (after the pyvfmac units) lets it bind.
set -eu
systemctl enable pyvfmac-watch.service
echo pyvfmac-testbed-late > /sys/bus/pci/devices/0000:02:00.0/driver_override
cat > /etc/systemd/system/pyvfmac-testbed-late-pf.service <<'UNIT'
[Unit]
Description=pyvfmac testbed: igb binds the second PF late (after the boot-time apply)
After=pyvfmac.service pyvfmac-watch.service
Before=pyvfmac-testbed-check.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo > /sys/bus/pci/devices/0000:02:00.0/driver_override && echo 0000:02:00.0 > /sys/bus/pci/drivers_probe'
[Install]
WantedBy=multi-user.target
UNIT
systemctl enable pyvfmac-testbed-late-pf.service
