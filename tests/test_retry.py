"""The core's bounded retry of transient driver errors (EAGAIN / EBUSY).

No driver of the testbed returns them, so a tiny LD_PRELOAD shim stands in for such a driver: it
rewrites the kernel's real EOPNOTSUPP answers (a veth has no VFs) into EBUSY for the first N
ACKs. Everything else is real: the socket, the kernel, the messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <sys/socket.h>

static int left = -1;

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src,
                 socklen_t *alen)
{
    static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    struct nlmsghdr *h = buf;
    ssize_t n, rest;

    if (!real)
        real = (ssize_t (*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))
            dlsym(RTLD_NEXT, "recvfrom");
    n = real(fd, buf, len, flags, src, alen);
    if (left < 0)
        left = getenv("FAKE_EBUSY") ? atoi(getenv("FAKE_EBUSY")) : 0;
    if (n <= 0 || (flags & MSG_PEEK))
        return n;
    for (rest = n; NLMSG_OK(h, (size_t)rest); h = NLMSG_NEXT(h, rest)) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_type == NLMSG_ERROR && e->error == -EOPNOTSUPP && left > 0) {
            e->error = -EBUSY;
            left--;
        }
    }
    return n;
}
"""

SCRIPT = textwrap.dedent("""
    import json, sys
    from pyvfmac.netlink import Rtnl
    from pyvfmac.types import VfChange
    extra = {"trust": True} if sys.argv[2] == "general" else {}  # else MAC only: bulk path
    with Rtnl() as nl:
        (r,) = nl.apply([VfChange(pf="vx0", vf=0, mac="02:00:00:00:00:01", **extra)],
                        retries=int(sys.argv[1]), backoff_us=500)
    json.dump([r.errno, r.attempts], sys.stdout)
""")

PATHS = pytest.mark.parametrize("path", ["bulk", "general"])


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the test shim")
    src = tmp_path / "shim.c"
    src.write_text(SHIM)
    lib = tmp_path / "shim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(src), "-ldl"],
                   check=True)
    return lib


def run(ns: str, shim: Path, busy: int, retries: int, path: str) -> list[int]:
    env = dict(os.environ, FAKE_EBUSY=str(busy))
    env["LD_PRELOAD"] = ":".join(filter(None, (env.get("LD_PRELOAD"), str(shim))))
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-P", "-c", SCRIPT,
                          str(retries), path], check=True, capture_output=True, text=True, env=env,
                         cwd="/").stdout
    return list(json.loads(out))


@pytest.mark.root
@PATHS
def test_transient_errors_are_retried_then_the_real_answer_counts(veth_netns: str,
                                                                   shim: Path, path: str) -> None:
    # two EBUSY, then the kernel's real EOPNOTSUPP: three requests carried the VF
    assert run(veth_netns, shim, busy=2, retries=5, path=path) == [95, 3]


@pytest.mark.root
@PATHS
def test_persistent_transient_error_is_reported_after_bounded_retries(veth_netns: str,
                                                                       shim: Path,
                                                                       path: str) -> None:
    import errno

    assert run(veth_netns, shim, busy=100, retries=2, path=path) == [errno.EBUSY, 3]
    assert run(veth_netns, shim, busy=100, retries=0, path=path) == [errno.EBUSY, 1]
