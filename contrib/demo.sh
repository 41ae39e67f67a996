#!/usr/bin/env bash
# The demo ./try runs in the testbed guest: derived, stable MACs for every VF of every PF.
set -euo pipefail
cfg=/tmp/vfmac.toml
echo "demo-host-key" > /tmp/host-key
{
	echo '[defaults]'
	echo 'host_key = "/tmp/host-key"'
	echo 'mac_policy = "derived"'
	echo 'spoofchk = true'
	vfmac list --json | python3 -c '
import json, sys
for pf in json.load(sys.stdin):
    print("[[pf]]")
    print("name = " + json.dumps(pf["pf"]))'
} > "$cfg"
echo "== $cfg"; head -12 "$cfg"; echo "..."
echo "== vfmac apply $cfg --dry-run | tail -3"
vfmac apply "$cfg" --dry-run | tail -3
echo "== vfmac apply $cfg"
time vfmac apply "$cfg"
echo "== vfmac apply $cfg   (again: nothing to change)"
time vfmac apply "$cfg"
echo "== vfmac list | head -20"
vfmac list | head -20
