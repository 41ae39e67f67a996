"""The Debian package scripts/build-deb builds: its fields, its files, its units, its maintainer
scripts, and its commands run from the extracted tree.

Needs the .deb: ``PYVFMAC_DEB=dist/pyvfmac_<version>_<arch>.deb`` (tests/run's "debian package"
part builds it and sets that). Without it these tests skip, and FAIL under ``CI=true``: CI must
not pass without having built the package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEB = os.environ.get("PYVFMAC_DEB", "")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UNITS = ("pyvfmac.service", "pyvfmac-watch.service")


@pytest.fixture(scope="module")
def deb() -> Path:
    if not DEB:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but PYVFMAC_DEB is not set: the .deb was not built")
        pytest.skip("PYVFMAC_DEB not set (tests/run builds the .deb and sets it)")
    path = Path(DEB)
    assert path.is_file(), f"PYVFMAC_DEB={DEB}: no such file"
    return path


def run(*cmd: str | Path, **kw: object) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True,
                          **kw).stdout  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def contents(deb: Path) -> dict[str, str]:
    """path (without the leading '.') -> its `dpkg-deb -c` line"""
    out = {}
    for line in run("dpkg-deb", "-c", deb).splitlines():
        name = line.split(None, 5)[5]
        path = name.split(" -> ")[0].removeprefix(".").rstrip("/") or "/"
        out[path] = line
    return out


@pytest.fixture(scope="module")
def tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deb")
    run("dpkg-deb", "-x", deb, root)
    return root


@pytest.fixture(scope="module")
def control(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("control") / "DEBIAN"
    run("dpkg-deb", "-e", deb, d)
    return d


def field(deb: Path, name: str) -> str:
    return run("dpkg-deb", "-f", deb, name).strip()


def test_name_and_fields(deb: Path) -> None:
    arch = run("dpkg", "--print-architecture").strip()
    assert deb.name == f"pyvfmac_{VERSION}_{arch}.deb"
    assert field(deb, "Package") == "pyvfmac"
    assert field(deb, "Version") == VERSION  # debian/changelog follows pyproject/meson
    assert field(deb, "Architecture") == arch
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    for want in ("python3-defusedxml", "kmod", "python3 (>= 3.11~)"):
        assert want in depends
    assert any(d.startswith("libc6") for d in depends)  # ${shlibs:Depends}: the C module
    assert any(d.startswith("python3-cffi-backend-api") for d in depends)  # ${python3:Depends}


def test_files(contents: dict[str, str]) -> None:
    def mode(path: str) -> str:
        assert path in contents, f"{path} not in the package"
        return contents[path].split()[0]

    for cmd in ("/usr/bin/vfmac", "/usr/bin/vfmac-cni", "/usr/share/pyvfmac/proxmox/vfmac-hook"):
        assert mode(cmd) == "-rwxr-xr-x", cmd
    for unit in UNITS:
        assert mode(f"/lib/systemd/system/{unit}") == "-rw-r--r--"
    assert contents["/usr/lib/cni/vfmac-cni"].endswith("-> ../../bin/vfmac-cni")
    for path in ("/usr/share/pyvfmac/udev/90-pyvfmac.rules",
                 "/usr/share/doc/pyvfmac/examples/vfmac.toml.example",
                 "/usr/share/doc/pyvfmac/README.md",  # the units' Documentation=: not compressed
                 "/usr/share/doc/pyvfmac/install-debian.md",
                 "/usr/share/doc/pyvfmac/copyright",
                 "/usr/share/man/man1/vfmac.1.gz", "/usr/share/man/man1/vfmac-cni.1.gz"):
        assert mode(path).startswith("-"), path
    assert any(re.fullmatch(r"/usr/lib/python3/dist-packages/pyvfmac/_native\.cpython-3\d+-.*\.so",
                            p) for p in contents)
    # Nothing the package may not or must not own: /opt (postinst links), an active udev rule
    # (opt-in), /etc but libvirt's hook in qemu.d (the config is the admin's), /var/lib/pyvfmac
    # (postinst makes it 0700).
    hook = "/etc/libvirt/hooks/qemu.d/pyvfmac"
    assert mode(hook) == "-rwxr-xr-x"
    for path in contents:
        if path.startswith("/etc") and path != hook:
            assert hook.startswith(path.rstrip("/") + "/"), path  # its directories only
            continue
        assert not path.startswith(("/opt", "/var", "/usr/local")), path
        assert not path.startswith(("/lib/udev", "/usr/lib/udev")), path
        assert path != "/etc/libvirt/hooks/qemu", path  # never over the admin's hook


def test_conffiles_are_the_libvirt_hook_only(control: Path, tree: Path) -> None:
    """The one file in /etc is libvirt's hook script in qemu.d (a conffile: an admin's edit
    survives upgrades); it runs `vfmac libvirt-hook` from /usr/bin."""
    assert (control / "conffiles").read_text().split() == ["/etc/libvirt/hooks/qemu.d/pyvfmac"]
    text = (tree / "etc/libvirt/hooks/qemu.d/pyvfmac").read_text()
    assert 'exec /usr/bin/vfmac libvirt-hook "$@"' in text


def test_paths_point_at_usr_bin(tree: Path) -> None:
    for unit in UNITS:
        text = (tree / "lib/systemd/system" / unit).read_text()
        execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
        assert execs == ["/usr/bin/vfmac"], unit
        assert "/usr/local" not in text.split("[Unit]", 1)[1]  # the comments may say pip's path
    rule = (tree / "usr/share/pyvfmac/udev/90-pyvfmac.rules").read_text()
    assert 'RUN+="/usr/bin/vfmac -q apply /etc/pyvfmac/vfmac.toml --pf $name"' in rule
    assert (tree / "usr/bin/vfmac").read_text().startswith("#!/usr/bin/python3\n")
    forwarder = (tree / "usr/bin/vfmac-cni").read_bytes()  # C: execs the plugin when needed
    assert forwarder[:4] == b"\x7fELF" and b"/usr/bin/python3" in forwarder


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_verify(tree: Path, tmp_path: Path) -> None:
    """systemd-analyze verify on the package's units. It checks that ExecStart='s binary exists
    and is executable: the units are verified with /usr/bin/vfmac replaced by the extracted
    tree's (--root= would want the whole system in that tree: sysinit.target, /bin/kill). It
    exits 0 on a key it cannot parse (it only logs it), so its output must be empty too."""
    for unit in UNITS:
        text = (tree / "lib/systemd/system" / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/usr/bin/vfmac", f"{tree}/usr/bin/vfmac"))
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_maintainer_scripts(control: Path) -> None:
    postinst = (control / "postinst").read_text()
    postrm = (control / "postrm").read_text()
    prerm = (control / "prerm").read_text()
    assert "install -d -m 0700 -o root -g root /var/lib/pyvfmac" in postinst
    assert '[ -d /opt/cni/bin ] && [ ! -e "$CNI_LINK" ] && [ ! -L "$CNI_LINK" ]' in postinst
    # pyvfmac.service enabled (a no-op without the config), started by nobody but the boot;
    # the watch daemon neither enabled nor started on install (deb-systemd-invoke starts no
    # disabled unit), stopped at removal.
    assert "deb-systemd-helper enable 'pyvfmac.service'" in postinst
    assert "deb-systemd-invoke start 'pyvfmac.service'" not in postinst
    assert "pyvfmac.service" not in prerm
    assert "was-enabled 'pyvfmac-watch.service'" in postinst
    assert "deb-systemd-invoke stop 'pyvfmac-watch.service'" in prerm
    assert '"$(readlink "$CNI_LINK")" = "$CNI_TARGET"' in postrm
    purge = postrm[postrm.index('if [ "$1" = purge ]'):]
    assert "rm -rf /var/lib/pyvfmac" in purge
    assert "/etc/pyvfmac" in purge and "rm -rf /etc/pyvfmac" not in postrm


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_commands_start(tree: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree / "usr/lib/python3/dist-packages"))
    assert run("/usr/bin/python3", tree / "usr/bin/vfmac", "--help", env=env).startswith(
        "usage: vfmac")
    out = run(tree / "usr/lib/cni/vfmac-cni",  # the C forwarder; no daemon: it runs the plugin
              env=dict(env, CNI_COMMAND="VERSION", PYVFMAC_CNI_SOCKET="/nonexistent"))
    assert '"supportedVersions"' in out
