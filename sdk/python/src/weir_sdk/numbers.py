"""Numbers written the way weir's Rust side writes them, so a Python plugin
and its Rust twin give byte-identical output.

:func:`json_number` is serde_json's float form (the shortest text that reads
back exactly: ``12.0``, ``1e-7``, ``1e16``); :func:`display` is Rust's
``{}`` of an ``f64`` (``200``, ``0.5``, never an exponent), which Rust
plugins use in their failure reasons. Python's ``repr`` gives the same
shortest digits; only where the point and the exponent go differs.
"""

from __future__ import annotations

__all__ = ["display", "json_number"]


def _shortest(x: float) -> tuple[str, str, int]:
    """(sign, digits, k) with abs(x) == int(digits) * 10**k, digits minimal."""
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    k = int(exponent) if exponent else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    k -= len(fraction)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    return sign, stripped or "0", k if stripped else 0


def json_number(x: float) -> str:
    """serde_json's text of a finite f64; ``null`` for NaN and infinities."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    sign, d, k = _shortest(x)
    n = len(d)
    kk = n + k
    if 0 <= k and kk <= 16:
        return f"{sign}{d}{'0' * k}.0"
    if 0 < kk <= 16:
        return f"{sign}{d[:kk]}.{d[kk:]}"
    if -5 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{d}"
    if n == 1:
        return f"{sign}{d}e{kk - 1}"
    return f"{sign}{d[0]}.{d[1:]}e{kk - 1}"


def display(x: float) -> str:
    """Rust's ``format!("{}", x)`` of an f64."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    sign, d, k = _shortest(x)
    if k >= 0:
        return f"{sign}{d}{'0' * k}"
    kk = len(d) + k
    if kk > 0:
        return f"{sign}{d[:kk]}.{d[kk:]}"
    return f"{sign}0.{'0' * -kk}{d}"
