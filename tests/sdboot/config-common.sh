# The config both boots of tests/test_systemd_boot.py use: the test puts it before setup-*.sh
# in the one --setup script it gives tests/vm/testbed boot-systemd.
mkdir -p /etc/pyvfmac
printf '%s\n' "pyvfmac-systemd-boot-test-key" > /etc/pyvfmac/host-key
cat > /etc/pyvfmac/vfmac.toml <<'TOML'
[defaults]
host_key = "/etc/pyvfmac/host-key"
mac_policy = "derived"

[[pf]]
pci = "0000:01:00.0"
numvfs = 7

[[pf]]
pci = "0000:02:00.0"
numvfs = 7
TOML
