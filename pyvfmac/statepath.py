"""Where the state database is: ``$PYVFMAC_STATE_DIR`` or ``/var/lib/pyvfmac``, file
``state.db``. Apart from :mod:`pyvfmac.statedb` (and SQLite), so that a command can tell whether
a store exists at all without importing either."""

from __future__ import annotations

import os

from .errors import InputError

__all__ = ["DB_NAME", "DEFAULT_STATE_DIR", "STATE_DIR_ENV", "default_state_dir", "store_exists"]

DEFAULT_STATE_DIR = "/var/lib/pyvfmac"
STATE_DIR_ENV = "PYVFMAC_STATE_DIR"
DB_NAME = "state.db"


def default_state_dir() -> str:
    """``$PYVFMAC_STATE_DIR`` if set and non-empty (it must be absolute), else ``/var/lib/pyvfmac``."""
    value = os.environ.get(STATE_DIR_ENV, "")
    if not value:
        return DEFAULT_STATE_DIR
    if not os.path.isabs(value):
        raise InputError(f"{STATE_DIR_ENV}={value!r}: the state directory must be an absolute path")
    return value


def store_exists(state_dir: str | None = None) -> bool:
    """Whether the state database exists (in ``state_dir``, else the default directory)."""
    return os.path.exists(os.path.join(state_dir or default_state_dir(), DB_NAME))
