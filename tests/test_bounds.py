"""Bounds on hostile sizes: a 64 MiB netlink reply, huge and deeply nested XML documents. Memory
stays bounded (measured in a child process of its own) and every refusal is one clear error.
(The TOML configuration's bounds: tests/test_apply_config_properties.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import XmlError
from pyvfmac.network import parse_network
from pyvfmac.xmltree import MAX_DEPTH, MAX_SIZE

TESTS = Path(__file__).parent


def test_64_mib_netlink_reply() -> None:
    """419 430 VFs in one RTM_NEWLINK (its list length wrapped many times): parsed with memory
    about twice the reply; the same reply cut in half is EBADMSG."""
    code = textwrap.dedent(f"""
        import resource, sys, time
        sys.path.insert(0, {str(TESTS)!r})
        import nlmsg
        from pyvfmac import _lowlevel as ll
        from pyvfmac.errors import VfmacError
        vf = nlmsg.vf_info(7, nlmsg.vf_mac(7))
        n = (64 << 20) // len(vf)
        msg = nlmsg.newlink(3, "pf0", vfs=[vf * n], num_vf=n)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()
        (link,) = ll.links_parse(msg)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(len(link.vfs), n, grown >> 10, round(time.monotonic() - t0, 1))
        try:
            ll.links_parse(msg[: len(msg) // 2])
        except VfmacError as exc:
            print(exc)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd="/")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    got, n, grown_mib, secs = first.split()
    assert int(got) == int(n) > 400000
    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine keeps freed memory
        assert int(grown_mib) < 5 * 64, first  # the C copy, the VF array, the Python objects
    assert second == "cannot parse link messages: Bad message (EBADMSG)"


@pytest.mark.parametrize("parse", [DeviceDocument.parse, parse_network])
def test_huge_and_deep_xml(parse: object) -> None:
    p = parse  # type: ignore[assignment]
    huge = "<domain><!--" + "x" * MAX_SIZE + "--></domain>"
    with pytest.raises(XmlError, match="t.xml: larger than 16 MiB"):
        p(huge, source="t.xml")  # type: ignore[operator]
    with pytest.raises(XmlError, match="t.xml: larger than 16 MiB"):
        p(huge.encode(), source="t.xml")  # type: ignore[operator]
    deep = "<a>" * 100000 + "</a>" * 100000
    with pytest.raises(XmlError, match=f"deeper than {MAX_DEPTH}"):
        p(deep, source="t.xml")  # type: ignore[operator]


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from pyvfmac.cli import main

    big = tmp_path / "vm.xml"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NULs, never read whole
    for argv in (["attach", str(big)], ["detach", str(big)], ["net-define", str(big)]):
        rc = main(["--state-dir", str(tmp_path / "state"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1, err
        assert str(big) in err[0] and "larger than 16 MiB" in err[0], err
