"""Property tests (Hypothesis) of the ``vfmac apply`` configuration: no file raises anything but
ConfigError (one line naming the file), valid configurations load as written, and the bounds
(nesting, size, 100 000 VFs) hold with memory bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvfmac.apply.config import MAX_CONFIG, load_config, parse_config
from pyvfmac.errors import ConfigError

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string (for these characters)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    out = []
    if "defaults" in doc:
        out.append("[defaults]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc["defaults"].items()]
    for pf in doc.get("pf", []):
        out.append("[[pf]]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in pf.items() if k != "vf"]
        for vf in pf.get("vf", []):
            out.append("[[pf.vf]]")
            out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in vf.items()]
    return "\n".join(out) + "\n"


SCALARS = st.one_of(st.booleans(), st.integers(-5, 70000), st.integers(), st.floats(
    allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["02:00:00:00:00:01", "52:54:00:12:34:56", "0000:03:00.0", "eth0",
                     "802.1Q", "802.1ad", "auto", "enable", "derived", "keep", "02:00"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(
    st.sampled_from(["a", "index"]), SCALARS, max_size=2))
SETTING_KEYS = ["vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate",
                "max_tx_rate"]
GOOD = {"vlan": st.integers(0, 4095), "qos": st.integers(0, 7),
        "vlan_proto": st.sampled_from(["802.1Q", "802.1ad"]), "spoofchk": st.booleans(),
        "trust": st.booleans(), "link_state": st.sampled_from(["auto", "enable", "disable"]),
        "min_tx_rate": st.integers(0, 100), "max_tx_rate": st.integers(0, 100)}


@st.composite
def table(draw: st.DrawFn, keys: list[str], good: dict[str, st.SearchStrategy[Any]]) -> dict:
    """Mostly well-typed values for the known keys, sometimes anything, sometimes unknown keys."""
    out: dict[str, Any] = {}
    for k in draw(st.lists(st.sampled_from(keys), unique=True, max_size=4)):
        out[k] = draw(good[k]) if k in good and draw(st.integers(0, 3)) else draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        out["colour"] = "red"
    return out


@st.composite
def config(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["defaults"] = draw(table(["host_key", "mac_prefix", "mac_policy", *SETTING_KEYS],
                                     {**GOOD, "mac_policy": st.just("keep"),
                                      "mac_prefix": st.just("02:00")}))
    pfs = []
    for i in range(draw(st.integers(0, 3))):
        pf = draw(table(["numvfs", "mac_policy", *SETTING_KEYS],
                        {**GOOD, "numvfs": st.integers(0, 64)}))
        pf["name" if draw(st.booleans()) else "pci"] = f"eth{i}" if draw(st.booleans()) \
            else f"0000:0{i}:00.0"
        vfs = []
        for j in range(draw(st.integers(0, 4))):
            vf = draw(table(["mac", *SETTING_KEYS], {**GOOD, "mac": st.just(
                f"02:00:00:00:{i:02x}:{j:02x}")}))
            vf["index"] = draw(st.one_of(st.just(j), st.integers(-1, 70000), VALUES))
            vfs.append(vf)
        if vfs:
            pf["vf"] = vfs
        pfs.append(pf)
    if pfs:
        doc["pf"] = pfs
    return doc


def loads_or_config_error(path: Path) -> object:
    try:
        return load_config(str(path))
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith(str(path)) and "\n" not in msg and len(msg) < 400, msg
        return exc


@FAST
@given(config())
def test_generated_configs_load_or_raise_config_error(tmp_path_factory: Any,
                                                      doc: dict[str, Any]) -> None:
    path = tmp_path_factory.mktemp("cfg") / "vfmac.toml"
    path.write_text(to_toml(doc))
    got = loads_or_config_error(path)
    if not isinstance(got, ConfigError):  # what loads is what was written
        assert [len(pf.vfs) for pf in got.pfs] == [len(pf.get("vf", [])) for pf in
                                                   doc.get("pf", [])]
        # and the parsed document gives the same result again
        assert parse_config(doc, path=str(path)) == parse_config(doc, path=str(path))


@FAST
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 config().map(to_toml).flatmap(lambda t: st.tuples(
                     st.just(t), st.integers(0, len(t)), st.text(max_size=5))).map(
                     lambda c: c[0][:c[1]] + c[2] + c[0][c[1]:])))
def test_any_file_raises_only_config_error(tmp_path_factory: Any, data: str | bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "vfmac.toml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data)
    loads_or_config_error(path)


def test_deep_nesting_and_huge_files_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "vfmac.toml"
    for text in ("a = " + "[" * 100000 + "]" * 100000, "a = " + "{b=" * 50000 + "1" + "}" * 50000,
                 "[" + ".".join(["x"] * 20000) + "]"):
        path.write_text(text)
        assert isinstance(loads_or_config_error(path), ConfigError)
    with open(path, "wb") as f:  # 17 MiB: refused before it is parsed
        f.write(b"# " + b"x" * (MAX_CONFIG + 1024) + b"\n")
    tracemalloc.start()
    got = loads_or_config_error(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(got, ConfigError) and "larger than 16 MiB" in str(got)
    assert peak < 2 * MAX_CONFIG + (8 << 20)
    path.write_text("[[pf]]\nname = \"a\"\n[[pf.vf]]\nindex = 1\nmac = \"" + "x" * 100000 + "\"\n")
    got = loads_or_config_error(path)
    assert isinstance(got, ConfigError) and len(str(got)) < 300  # the value shown shortened


def test_a_config_naming_100000_vfs(tmp_path: Path) -> None:
    """Two PFs of 50 000 VFs each, every VF with its own MAC: loads in bounded time and memory
    (under 400 MiB);
    one more VF index than a PF can have is a one-line error naming it."""
    def vfs(pf: int, n: int) -> str:
        return "".join(f"[[pf.vf]]\nindex = {i}\nmac = \"02:{pf:02x}:00:{i >> 8 & 255:02x}:"
                       f"{i & 255:02x}:01\"\n" for i in range(n))

    path = tmp_path / "vfmac.toml"
    path.write_text("[[pf]]\nname = \"a\"\n" + vfs(1, 50000) + "[[pf]]\nname = \"b\"\n"
                    + vfs(2, 50000))
    # in a child of its own: its peak RSS is this load's (tracemalloc would slow it 4 times)
    code = ("import resource, sys\nfrom pyvfmac.apply.config import load_config\n"
            "cfg = load_config(sys.argv[1])\n"
            "print(sum(len(pf.vfs) for pf in cfg.pfs), "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                       timeout=300, cwd="/")
    assert r.returncode == 0, r.stderr
    n, rss_kib = map(int, r.stdout.split())
    assert n == 100000
    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine keeps freed memory
        # tomllib keeps the whole document (about 2.7 KiB a VF table): 270-280 MiB seen
        assert rss_kib < 400 << 10, rss_kib  # KiB
    assert time.monotonic() - t0 < 120
    path.write_text("[[pf]]\nname = \"a\"\n[[pf.vf]]\nindex = 65535\n")
    got = loads_or_config_error(path)
    assert isinstance(got, ConfigError) and "pf[0].vf[0].index = 65535" in str(got)
