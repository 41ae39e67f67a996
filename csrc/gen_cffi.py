"""Emit the cffi API-mode wrapper (pyvfmac._native) from the cdef files.

Usage: gen_cffi.py CDEF... OUT.c  -- each csrc/NAME.cdef mirrors csrc/NAME.h,
which the generated C includes, so the compiler checks the cdef against it.
"""
import pathlib
import sys

import cffi

cdefs = [pathlib.Path(p) for p in sys.argv[1:-1]]
ffi = cffi.FFI()
ffi.cdef("".join(p.read_text() for p in cdefs))
ffi.set_source("pyvfmac._native", "".join(f'#include "{p.stem}.h"\n' for p in cdefs))
ffi.emit_c_code(sys.argv[-1])
