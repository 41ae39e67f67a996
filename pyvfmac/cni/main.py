"""``vfmac-cni``: the CNI plugin's entry point (spec 1.1.0). Reads the environment and stdin,
runs the command, writes the result or the CNI error JSON on stdout; exit status 0 or 1.

Only what every call needs is imported here; the plugin's work is imported when it runs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy: always_true)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..host import Host


@dataclass(frozen=True, slots=True)
class Answer:
    """What one call writes: exit ``status``, ``stdout`` (the result or error JSON), ``log``
    (lines for the runtime's log, on stderr)."""

    status: int
    stdout: str
    log: list[str]


def _run(raw: bytes, environ: dict[str, str], kept: Callable[[], Host] | None,
         log: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON to print or None, the config's cniVersion when known); lines for the runtime's
    log go to ``log``. ``kept``: gives the host the daemon keeps open; else one is opened for
    the call (and closed after it)."""
    from .config import parse, parse_for_del, read_env

    env = read_env(environ)
    if env.command == "VERSION":  # stdin is a hint only: libcni's skel does not even read it
        from .result import version_info

        return version_info(_version_hint(raw)), None
    # ADD and CHECK read every key; DEL (and GC, STATUS) only the name, version and IPAM type,
    # so that whatever ADD would refuse can still be deleted
    conf = parse(raw, env) if env.command in ("ADD", "CHECK") else parse_for_del(raw, env)
    from . import plugin

    mine = kept is None
    if kept is not None:
        host = kept()
    else:
        from ..host import open_host

        host = open_host(state_dir=os.environ.get("PYVFMAC_STATE_DIR") or None)
    try:
        if env.command == "ADD":
            return plugin.add(env, conf, host), conf.version
        if env.command == "DEL":
            log.extend(f"vfmac-cni: {warning}" for warning in plugin.delete(env, conf, host))
        elif env.command == "CHECK":
            plugin.check(env, conf, host)
        elif env.command == "GC":
            plugin.gc(env, conf, host)
        else:
            plugin.status(env, conf, host)
        return None, conf.version
    finally:
        if mine:
            host.close()


def handle(raw: bytes, environ: dict[str, str],
           kept: Callable[[], Host] | None = None) -> Answer:
    """One CNI call: stdin ``raw``, the environment ``environ``; what to write and the exit
    status. The daemon (:mod:`.server`, which passes ``kept``) and :func:`main` both answer
    through it."""
    log: list[str] = []
    try:
        out, _ = _run(raw, environ, kept, log)
    except Exception as exc:  # every failure becomes the CNI error object
        from .result import dumps, error

        if environ.get("CNI_COMMAND") == "STATUS" and not hasattr(exc, "code"):
            from ..errors import CniError
            from . import codes

            exc = CniError(codes.NOT_AVAILABLE, f"vfmac-cni is not available: {exc}")
        return Answer(1, dumps(error(_version_hint(raw), exc)), log)
    if out is None:  # DEL, CHECK, GC, STATUS print nothing
        return Answer(0, "", log)
    from .result import dumps

    return Answer(0, dumps(out), log)


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
    """``vfmac-cni`` run in this process (the forwarder execs it when no daemon answers)."""
    answer = handle(sys.stdin.buffer.read(), dict(os.environ))
    for line in answer.log:
        sys.stderr.write(line + "\n")
    sys.stdout.write(answer.stdout)
    sys.stdout.flush()
    sys.exit(answer.status)


if __name__ == "__main__":
    main()
