"""IPAM delegation: run the plugin named in ``ipam.type`` from ``CNI_PATH`` with this call's
environment (``CNI_COMMAND`` as given) and the network configuration on stdin, as the CNI spec
says a delegating plugin does."""

from __future__ import annotations

import json
import os
import subprocess

from ..errors import CniError, IpamError
from . import codes
from .config import Env
from .result import IpamResult, parse_ipam

TIMEOUT = 60.0


def find(plugin: str, env: Env) -> str:
    """The delegate's executable on ``CNI_PATH`` (code 4 without a path, 108 when absent)."""
    if not env.path:
        raise CniError(codes.BAD_ENV, f"CNI_PATH is empty: cannot find IPAM plugin {plugin}")
    for directory in env.path:
        candidate = os.path.join(directory, plugin)
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    raise CniError(codes.IPAM, f"IPAM plugin {plugin}: not found in CNI_PATH "
                   f"{':'.join(env.path)}")


def run(plugin: str, command: str, raw: bytes, env: Env,
        overrides: dict[str, str] | None = None) -> bytes:
    """Run the delegate for ``command``; its stdout. A delegate error is raised as the
    :class:`IpamError` it sent (its code, msg and details), so the runtime sees it unchanged;
    a delegate that cannot be found or run, or whose answer is unreadable, is a CniError of
    code 108 (``codes.IPAM``).

    A delegate that predates spec 1.1.0 refuses a 1.1.0 configuration (code 1); IPAM results
    did not change in 1.1.0, so it is asked again with 1.0.0."""
    try:
        return _run(plugin, command, raw, env, overrides)
    except CniError as exc:
        if exc.code != codes.INCOMPATIBLE_VERSION or command == "GC":
            raise
        doc = json.loads(raw)
        if doc.get("cniVersion") != "1.1.0":
            raise
        doc["cniVersion"] = "1.0.0"
        return _run(plugin, command, json.dumps(doc).encode(), env, overrides)


def _run(plugin: str, command: str, raw: bytes, env: Env,
         overrides: dict[str, str] | None) -> bytes:
    exe = find(plugin, env)
    environ = dict(env.environ or os.environ, CNI_COMMAND=command, **(overrides or {}))
    try:
        done = subprocess.run([exe], input=raw, env=environ, capture_output=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CniError(codes.IPAM, f"IPAM plugin {plugin} {command}: cannot run: {exc}") from None
    if done.returncode == 0:
        return done.stdout
    try:
        doc = json.loads(done.stdout)
        code, msg = int(doc["code"]), str(doc["msg"])
        details = str(doc.get("details") or "")
    except (ValueError, KeyError, TypeError):
        stderr = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise CniError(codes.IPAM, f"IPAM plugin {plugin} {command}: exit "
                       f"{done.returncode}", stderr) from None
    raise IpamError(code, f"IPAM plugin {plugin} {command}: {msg}", details)


def knows_1_1(plugin: str, env: Env) -> bool:
    """Whether the delegate speaks spec 1.1.0 (GC, STATUS), by its VERSION answer."""
    out = run(plugin, "VERSION", b'{"cniVersion": "1.1.0"}', env)
    try:
        versions = json.loads(out).get("supportedVersions") or []
    except (ValueError, AttributeError):
        raise CniError(codes.IPAM, f"IPAM plugin {plugin} VERSION: not a version answer") \
            from None
    return "1.1.0" in versions


def add(plugin: str, raw: bytes, env: Env) -> IpamResult:
    out = run(plugin, "ADD", raw, env)
    try:
        doc = json.loads(out)
    except ValueError:
        raise CniError(codes.IPAM, f"IPAM plugin {plugin}: result is not JSON") from None
    return parse_ipam(doc, plugin)


def delete(plugin: str, raw: bytes, env: Env, *, container_id: str | None = None,
           ifname: str | None = None) -> None:
    """DEL to the delegate; for another attachment than this call's (GC), its container id and
    interface name replace ``CNI_CONTAINERID`` / ``CNI_IFNAME``."""
    overrides = {}
    if container_id is not None:
        overrides["CNI_CONTAINERID"] = container_id
    if ifname is not None:
        overrides["CNI_IFNAME"] = ifname
    run(plugin, "DEL", raw, env, overrides)
