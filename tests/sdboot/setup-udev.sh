# tests/test_systemd_boot.py, boot 2 (tests/vm/testbed boot-systemd --setup): the same config and
# machine-id as boot 1, the daemon left disabled (the package's default): pyvfmac.service alone
# programs both PFs at boot. The check script then links the udev rule (the alternative to the
# daemon) into /etc/udev/rules.d and reloads igb.
set -eu
