"""Every exception pyvfmac raises.

- ``VfmacError`` is the base of all of them.
- ``InputError`` (also a ``ValueError``): something the user gave is wrong (a MAC, a PCI address,
  an XML document, a config file); nothing on the host was changed.
- ``KernelError`` (also an ``OSError``, with ``errno``): the kernel refused an operation; the message
  names the device, the VF, the setting, the errno name and its text, and the kernel's own
  extended-ACK message when it sent one.
- ``FileError`` (a ``KernelError``, so an ``OSError`` with ``errno`` and ``filename``): reading or
  writing a file the user named failed; the message names the path, the step and the reason.
- ``TopologyError`` (also a ``LookupError``): a device is not what it has to be (not a PCI device,
  not a network function, not a VF, unknown name).
- ``StateError``: the saved-original store says no (not attached, already held, corrupted);
  ``RestoreError``: a VF could not be put back completely (its record is kept).
- ``PoolError``: a network pool cannot serve the request (no free device, unknown network, in use).
- ``UsageError``: a malformed ``vfmac`` command line.
- ``CniError``: a CNI request that cannot be served, with its CNI error code; ``IpamError``: the
  error an IPAM delegate returned.
"""

from __future__ import annotations

import errno as _errno
import os


class VfmacError(Exception):
    """Base class of every pyvfmac error."""


class InputError(VfmacError, ValueError):
    """Bad user input; raised before anything on the host changes."""


class MacError(InputError):
    """An invalid MAC address."""


class PciAddressError(InputError):
    """An invalid PCI address."""


class NetdevNameError(InputError):
    """An invalid network device name."""


class NetworkNameError(InputError):
    """An invalid network name (of a pool network)."""


class XmlError(InputError):
    """Malformed or invalid device / network XML."""


class ConfigError(InputError):
    """An invalid boot-time configuration file."""


# Where Linux has two names for one number, the one the networking world prints.
_PREFERRED = {_errno.EOPNOTSUPP: "EOPNOTSUPP", _errno.EAGAIN: "EAGAIN", _errno.EDEADLK: "EDEADLK"}


def errno_name(code: int) -> str:
    """``EOPNOTSUPP`` for 95, ``E123`` for a number with no name."""
    return _PREFERRED.get(code) or _errno.errorcode.get(code, f"E{code}")


class KernelError(VfmacError, OSError):
    """The kernel refused an operation.

    ``str()`` reads like ``eth0 vf 7: cannot set MAC 02:00:00:00:00:07: Operation not supported
    (EOPNOTSUPP)``, followed by ``: <kernel message>`` when the kernel sent an extended ACK, and by
    ``; <outcome>`` when the rest of the request has one to tell (``; nothing changed``, ``; set:
    MAC 02:00:00:00:00:07``: what became of the settings sent with the refused one).
    """

    def __init__(
        self,
        code: int,
        what: str,
        *,
        device: str | None = None,
        vf: int | None = None,
        ext_msg: str | None = None,
        outcome: str | None = None,
    ) -> None:
        OSError.__init__(self, code, os.strerror(code))
        self.what = what
        self.device = device
        self.vf = vf
        self.ext_msg = ext_msg or None
        self.outcome = outcome or None

    def __str__(self) -> str:
        where = ""
        if self.device is not None:
            where = self.device if self.vf is None else f"{self.device} vf {self.vf}"
            where += ": "
        text = f"{where}{self.what}: {self.strerror} ({errno_name(self.errno or 0)})"
        if self.ext_msg:
            text += f": {self.ext_msg}"
        text += self._note()
        if self.outcome:
            text += f"; {self.outcome}"
        return text

    def _note(self) -> str:
        """What a kind of error adds after the errno (and the kernel's message)."""
        return ""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            _rebuild_kernel_error,
            (type(self), self.errno, self.what, self.device, self.vf, self.ext_msg, self.outcome),
        )


def _rebuild_kernel_error(
    cls: type[KernelError], code: int, what: str, device: str | None, vf: int | None,
    ext_msg: str | None, outcome: str | None = None,
) -> KernelError:
    return cls(code, what, device=device, vf=vf, ext_msg=ext_msg, outcome=outcome)


def _lacks_net_admin() -> bool:
    """This process's effective capabilities lack CAP_NET_ADMIN (12); False when unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return not int(line.split()[1], 16) >> 12 & 1
    except (OSError, ValueError):
        pass
    return False


class NetlinkError(KernelError):
    """An rtnetlink request failed. EPERM in a process without CAP_NET_ADMIN says so."""

    def _note(self) -> str:
        if self.errno == _errno.EPERM and _lacks_net_admin():
            return " (this process lacks CAP_NET_ADMIN: run as root)"
        return ""


class SysfsError(KernelError):
    """A sysfs read or write failed."""


class FileError(KernelError):
    """A file the user named could not be read or written (``filename`` is its path, ``what``
    the step, ``cannot read`` or ``cannot rename``, ...).

    ``str()`` reads like ``/etc/guest.xml: cannot read: No such file or directory``: the one form
    of every command's file errors (``vfmac apply``'s config, ``attach`` / ``detach`` /
    ``net-define``'s documents, ``--live-xml``). A kind of KernelError for the same reason
    SysfsError is one: the kernel refused a system call on a file; catching KernelError keeps
    catching it.
    """

    def __init__(self, code: int, what: str, path: str) -> None:
        super().__init__(code, what)
        self.filename = path

    def __str__(self) -> str:
        return f"{self.filename}: {self.what}: {self.strerror}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild_file_error, (type(self), self.errno, self.what, self.filename))


def _rebuild_file_error(cls: type[FileError], code: int, what: str, path: str) -> FileError:
    return cls(code, what, path)


class TopologyError(VfmacError, LookupError):
    """A device is missing or is not what the operation needs."""


class StateError(VfmacError):
    """The state store refuses (not attached, already held) or is damaged."""


class PoolError(VfmacError):
    """A network pool cannot serve a request."""


class RestoreError(StateError):
    """A VF could not be put back completely; its saved record is kept."""


class UsageError(Exception):
    """A malformed ``vfmac`` command line (exit status 2). Not a VfmacError: it is about how the
    command was typed, not about the host or the documents it was given."""


class CniError(VfmacError):
    """A CNI request that cannot be served (``vfmac-cni``): ``code`` is the CNI error code the
    runtime receives (1 incompatible version, 4 bad environment, 6 undecodable config, 7 invalid
    config, 11 try again, 100 and up our own: see ``pyvfmac.cni.result``), ``details`` more text."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


class IpamError(CniError):
    """The error an IPAM delegate itself returned (its code and details, passed through to the
    runtime). A plugin that answers ADD with an error holds no lease for it (the CNI spec asks
    that of every plugin), so a failed ADD does not DEL it."""
