#!/usr/bin/env python3
"""Write the seed corpora fuzz/corpus/<target>/seed-* from a testbed capture (fuzz/capture.py).

  python3 fuzz/mkseeds.py /tmp/fuzz-capture/capture

Every seed is a real kernel reply or real sysfs content from the guest (netdevsim with 4096 VFs,
igb with 7), wrapped in the target's input format (fuzz/fuzz_<target>.c); a few hand-made ones
(marked synth-) cover what the guest cannot produce. Existing seed-* / synth-* files are
replaced; regress-* files (crash inputs) are kept.
"""
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
FAKE_STAMP = 0x01
FAKE_PORTID = 0x4242
MAX_SEED = 1 << 20  # a single seed; the 4096-VF reply is about 0.5 MB


def records(dgrams: list[bytes], flags: int) -> bytes:
    return b"".join(struct.pack("<IB", len(d), flags) + d for d in dgrams)


def retag(d: bytes, *, seq: int | None = None) -> bytes:
    """The datagram with every top-level message's pid (and seq) set as the harness expects."""
    b = bytearray(d)
    off = 0
    while off + 16 <= len(b):
        ln = struct.unpack_from("=I", b, off)[0]
        if ln < 16 or ln > len(b) - off:
            break
        if seq is not None:
            struct.pack_into("=I", b, off + 8, seq)
        struct.pack_into("=I", b, off + 12, FAKE_PORTID)
        off += (ln + 3) & ~3
    return bytes(b)


class Out:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, bytes]] = {}

    def add(self, target: str, name: str, data: bytes) -> None:
        if len(data) > MAX_SEED:
            print(f"mkseeds: {target}/{name}: {len(data)} bytes, left out", file=sys.stderr)
            return
        seen = self.files.setdefault(target, {})
        if data not in seen.values():
            seen[name] = data

    def write(self) -> None:
        for target, files in sorted(self.files.items()):
            d = CORPUS / target
            d.mkdir(parents=True, exist_ok=True)
            for old in d.iterdir():
                if old.name.startswith(("seed-", "synth-")):
                    old.unlink()
            for name, data in files.items():
                (d / name).write_bytes(data)
            total = sum(len(v) for v in files.values())
            print(f"mkseeds: {target}: {len(files)} seeds, {total} bytes", file=sys.stderr)


def groups(raw: Path) -> dict[str, list[bytes]]:
    g: dict[str, list[bytes]] = {}
    for f in sorted(raw.iterdir()):
        name, idx, _ = f.name.rsplit(".", 2)
        g.setdefault(name, []).append(f.read_bytes())
    return g


def netlink_seeds(out: Out, g: dict[str, list[bytes]]) -> None:
    for name, dgrams in g.items():
        if name.startswith("get_") or name == "dump":
            # links_parse: each datagram as received; a dump's small datagrams also joined
            for i, d in enumerate(dgrams):
                # one 4096-VF reply (0.8 MB, its list length wrapped) is enough: the corpus
                # stays small
                if len(d) < 65536 or name.startswith("get_nsim_after"):
                    out.add("links_parse", f"seed-{name}-{i}", d)
            small = [d for d in dgrams if len(d) < 65536]
            if len(small) > 1:
                out.add("links_parse", f"seed-{name}-joined", b"".join(small))
            opt = 1 if name == "dump" else 2 if name.endswith(("byname", "enodev_name")) else 0
            keep = [d for d in dgrams if len(d) < 65536]
            if not keep:
                continue
            out.add("link_read", f"seed-{name}", bytes([opt]) + records(keep, FAKE_STAMP))
        elif name.startswith("ack_"):
            # requests were numbered 1..n: the ACK window's seqs; pid set to the fake socket's
            n = sum(1 for d in dgrams for _ in walk(d))
            cap = 0 if name.endswith("_echo") or "badvf" in name or "linkstate" in name else 1
            opt = ((min(n, 128) - 1) << 1) | cap
            out.add("ack", f"seed-{name}", bytes([opt]) + records([retag(d) for d in dgrams], 0))


def walk(d: bytes):
    off = 0
    while off + 16 <= len(d):
        ln = struct.unpack_from("=I", d, off)[0]
        if ln < 16:
            return
        yield off
        off += (ln + 3) & ~3


def pci_tuple(name: str) -> tuple[int, int, int, int] | None:
    try:
        dom, bus, rest = name.split(":")
        slot, fn = rest.split(".")
        return int(dom, 16), int(bus, 16), int(slot, 16), int(fn)
    except ValueError:
        return None


def addr3(a: tuple[int, int, int, int]) -> bytes:
    return bytes([a[0] & 1, a[1] & 7, (a[2] & 0x1F) | (a[3] << 5)])


def sysfs_seeds(out: Out, sysfs: dict) -> None:
    pci = sysfs["pci"]
    for dev, e in pci.items():
        files, links = e["files"], e["links"]
        if "uevent" in files:
            out.add("sysfs_uevent", f"seed-uevent-{dev}", b"\xff" + files["uevent"].encode())
        for f, v in files.items():
            if f != "uevent":
                out.add("sysfs_numbers", f"seed-{f}-{dev}", b"\x00" + v.encode())
        out.add("sysfs_numbers", f"seed-name-{dev}", b"\x00" + dev.encode())
        for ln, target in links.items():
            out.add("sysfs_link", f"seed-{ln}-{dev}", b"\x3f" + target.encode())
    # the whole topology as the walker's first phase hands it to vfm_topo_link
    funcs, virtfns = b"", b""
    names = sorted(pci)
    for dev in names:
        e, a = pci[dev], pci_tuple(dev)
        if a is None:
            continue
        flags = 0
        vfl = sorted((int(k[6:]), v) for k, v in e["links"].items() if k.startswith("virtfn"))
        if "sriov_totalvfs" in e["files"]:
            flags |= 0x0004
        phys = pci_tuple(os.path.basename(e["links"].get("physfn", "")))
        if phys:
            flags |= 0x0008
        funcs += addr3(a) + b"\0\0" + struct.pack("<H", flags) + bytes([min(len(vfl), 15)])
        funcs += addr3(phys or (0, 0, 0, 0)) + b"\0"
        for idx, target in vfl[:15]:
            va = pci_tuple(os.path.basename(target)) or (0, 0, 0, 0)
            virtfns += addr3(va) + bytes([idx & 255]) + b"\0" * 4
    n = len(funcs) // 12
    out.add("sysfs_topo", "seed-testbed", bytes([min(n, 255)]) + funcs + virtfns)


def synth_seeds(out: Out) -> None:
    macs = [f"02:00:00:{k >> 8:02x}:{k & 255:02x}:5a" for k in range(256)]
    for n in (1, 7, 64, 200):
        text = "\n".join(macs[:n]).encode()
        out.add("macs", f"synth-{n}", bytes([2, 0, 0, 255]) + text)
        out.add("macs", f"synth-{n}-3jobs-vfs", bytes([2, 0x82, 8, 255]) + text)
    out.add("macs", "synth-trailing-newline", bytes([3, 0, 0, 255]) + b"\n".join(
        m.encode() for m in macs[:4]) + b"\n")
    out.add("macs", "synth-multicast", bytes([2, 0, 0, 255]) + b"03:00:00:00:00:01")
    out.add("macs", "synth-upper", bytes([2, 0, 0, 255]) + b"02:00:00:00:00:0A")
    out.add("macs", "synth-zero", bytes([2, 0, 0, 255]) + b"00:00:00:00:00:00")
    out.add("sysfs_numbers", "synth-dec-max", b"\x00" + b"4294967295\n")
    out.add("sysfs_numbers", "synth-dec-over", b"\x00" + b"4294967296\n")
    out.add("sysfs_numbers", "synth-domain8", b"\x00" + b"10000000:00:1f.7")
    out.add("sysfs_uevent", "synth-bad-ids", b"\xff" + b"PCI_ID=80Z6:10CA\nPCI_CLASS=1234567\n"
            b"DRIVER=\nPCI_SLOT_NAME=\n=\nX\n\n")
    out.add("sysfs_link", "synth-trailing-slash", b"\x3f" + b"../../../bus/pci/drivers/igb/")


def main() -> int:
    out = Out()
    if len(sys.argv) > 1:
        cap = Path(sys.argv[1])
        netlink_seeds(out, groups(cap / "raw"))
        sysfs_seeds(out, json.load(open(cap / "sysfs.json")))
    synth_seeds(out)
    out.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
