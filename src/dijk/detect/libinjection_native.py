"""libinjection's SQLi and XSS tokenizers, called through their C entry points.

The ``libinjection-python`` wrapper builds a Python dict of the whole token vector on
every call (about 7 µs); calling ``libinjection_sqli``/``libinjection_xss`` in the same
shared object through ctypes costs about 1.5 µs and returns just what we use: the
verdict and the SQLi fingerprint. If the symbols are not there (another build of the
wrapper), the wrapper's own functions are used.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import libinjection

_FINGERPRINT_SIZE = 8


def _load_native() -> tuple[Callable[[bytes], str | None], Callable[[bytes], bool]] | None:
    try:
        library = ctypes.CDLL(libinjection.__file__)
        sqli = library.libinjection_sqli
        xss = library.libinjection_xss
    except (OSError, AttributeError):
        return None
    sqli.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    sqli.restype = ctypes.c_int
    xss.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    xss.restype = ctypes.c_int

    def native_sqli(data: bytes) -> str | None:
        fingerprint = ctypes.create_string_buffer(_FINGERPRINT_SIZE)
        if sqli(data, len(data), fingerprint):
            return fingerprint.value.decode("ascii", "replace")
        return None

    def native_xss(data: bytes) -> bool:
        return bool(xss(data, len(data)))

    return native_sqli, native_xss


def _wrapper_sqli(data: bytes) -> str | None:
    result = libinjection.is_sql_injection(data.decode("utf-8", "replace"))
    if result.get("is_sqli"):
        fingerprint = result.get("fingerprint", "")
        return fingerprint if isinstance(fingerprint, str) else str(fingerprint)
    return None


def _wrapper_xss(data: bytes) -> bool:
    result = libinjection.is_xss(data.decode("utf-8", "replace"))
    return bool(result.get("is_xss"))


_NATIVE = _load_native()
sqli_fingerprint: Callable[[bytes], str | None] = _NATIVE[0] if _NATIVE else _wrapper_sqli
is_xss: Callable[[bytes], bool] = _NATIVE[1] if _NATIVE else _wrapper_xss
NATIVE = _NATIVE is not None
LIBINJECTION_VERSION = "3.9.2"
