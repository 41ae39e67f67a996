"""``vfmac-cni``: the CNI plugin's entry point (spec 1.1.0). Reads the environment and stdin,
runs the command, writes the result or the CNI error JSON on stdout; exit status 0 or 1.

Only what every call needs is imported here; the plugin's work is imported when it runs."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from typing import Any


def _run(raw: bytes, environ: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON to print or None, the config's cniVersion when known)."""
    from .config import parse, parse_for_del, read_env

    env = read_env(environ)
    if env.command == "VERSION":  # stdin is a hint only: libcni's skel does not even read it
        from .result import version_info

        return version_info(_version_hint(raw)), None
    # ADD and CHECK read every key; DEL (and GC, STATUS) only the name, version and IPAM type,
    # so that whatever ADD would refuse can still be deleted
    conf = parse(raw, env) if env.command in ("ADD", "CHECK") else parse_for_del(raw, env)
    from ..host import open_host
    from . import plugin

    host = open_host(state_dir=os.environ.get("PYVFMAC_STATE_DIR") or None)
    try:
        if env.command == "ADD":
            return plugin.add(env, conf, host), conf.version
        if env.command == "DEL":
            for warning in plugin.delete(env, conf, host):  # for the runtime's log
                sys.stderr.write(f"vfmac-cni: {warning}\n")
        elif env.command == "CHECK":
            plugin.check(env, conf, host)
        elif env.command == "GC":
            plugin.gc(env, conf, host)
        else:
            plugin.status(env, conf, host)
        return None, conf.version
    finally:
        host.close()


def _version_hint(raw: bytes) -> str | None:
    """stdin's cniVersion when it has one (None: none, or stdin is no JSON object)."""
    import json

    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    version = doc.get("cniVersion") if isinstance(doc, dict) else None
    return version if isinstance(version, str) else None


def main() -> None:
    raw = sys.stdin.buffer.read()
    try:
        out, _ = _run(raw, dict(os.environ))
    except Exception as exc:  # every failure becomes the CNI error object
        from .result import dumps, error

        if os.environ.get("CNI_COMMAND") == "STATUS" and not hasattr(exc, "code"):
            from ..errors import CniError
            from . import codes

            exc = CniError(codes.NOT_AVAILABLE, f"vfmac-cni is not available: {exc}")
        sys.stdout.write(dumps(error(_version_hint(raw), exc)))
        sys.stdout.flush()
        sys.exit(1)
    if out is not None:  # ADD and VERSION (DEL, CHECK, GC, STATUS print nothing)
        from .result import dumps

        sys.stdout.write(dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
