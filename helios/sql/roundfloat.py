"""SQLite's ``round(X, N)`` for N > 0, digit for digit.

SQLite (3.40) rounds by printing: ``printf("%.*f", N, X)`` in x87 ``long
double``, then reading the text back with ``sqlite3AtoF``, also in ``long
double``. Both steps leave their marks on the answer, and SQL users compare
against SQLite, so we reproduce them rather than round correctly:

* the printer adds half a unit of the last digit (plus ``X * 3e-16`` when few
  digits are asked for, so that ``round(2.675, 2)`` is 2.68), scales the value
  into [1, 10) and peels digits off one multiplication at a time - and writes
  at most 16 significant digits, zeros after that: ``round(18, 18)`` prints
  ``17.999999999999990000`` and is 17.99999999999999, not 18.0;
* the reader keeps at most 19 digits and divides by a power of ten in long
  double, then rounds to a double (a double rounding, not always the nearest).

Long double arithmetic is emulated exactly with ``Fraction``s (``long_double``).
That is slow, so ``round_digits`` first tries plain doubles and keeps their
answer only when it is clearly away from a digit boundary and short enough for
both steps to be exact.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from typing import Final

from .values import long_double as ld

_AR_ROUND: Final = (5.0e-1, 5.0e-2, 5.0e-3, 5.0e-4, 5.0e-5, 5.0e-6, 5.0e-7, 5.0e-8, 5.0e-9, 5.0e-10)
_THREE_E_MINUS_16: Final = Fraction(3e-16)
_SIGNIFICANT: Final = 16                    # printf's digits before it writes zeros
_ATOF_LIMIT: Final = (2**63 - 1 - 9) // 10  # sqlite3AtoF stops adding digits here
_TEN_22: Final = Fraction(10**22)
_ONE_E_MINUS_8: Final = Fraction(1e-8)      # the C double constant, not 10**-8


def round_digits(r: float, n: int) -> float:
    """SQLite's ``round(r, n)`` for 0 < n <= 30 and |r| <= 2**52."""
    v = -r if r < 0 else r
    rounder = _rounder(v, n)
    scale = 10 ** n
    approx = (v + rounder) * scale
    if approx < 1e9 and 1e-6 < approx % 1.0 < 1.0 - 1e-6:
        result = int(approx) / scale       # few digits: printed and read back exactly
        return -result if r < 0 else result
    return _atof(_print_fixed(Fraction(v) + Fraction(rounder), n), negative=r < 0)


def _rounder(v: float, n: int) -> float:
    """printf's ``rounder`` (a C double): half a unit of the n-th decimal, plus
    ``v * 3e-16`` (computed in long double) when ``n`` digits are few for ``v``."""
    rounder = _AR_ROUND[n % 10]
    for _ in range(n // 10):
        rounder *= 1.0e-10
    exponent = ((struct.unpack("<Q", struct.pack("<d", v))[0] >> 52) & 0x7FF) - 1023
    if n + int(exponent / 3) < 15:          # C's truncating division
        rounder = float(ld(Fraction(rounder) + ld(Fraction(v) * _THREE_E_MINUS_16)))
    return rounder


def _print_fixed(value: Fraction, n: int) -> str:
    """``printf("%.*f", n, ...)`` of ``value`` (= v + rounder, not yet rounded to long
    double), positive: the digit loop of SQLite's printf, in long double."""
    real = ld(value)
    exp = 0
    if real > 0:
        scale = Fraction(1)
        while real >= ld(10 * scale):
            scale = ld(scale * 10)
            exp += 1
        real = ld(real / scale)
        while real < _ONE_E_MINUS_8:
            real = ld(real * 100_000_000)
            exp -= 8
        while real < 1:
            real = ld(real * 10)
            exp -= 1
    budget = _SIGNIFICANT
    out: list[str] = []

    def digit() -> str:
        nonlocal real, budget
        if budget <= 0:
            return "0"
        budget -= 1
        d = int(real)
        real = ld((real - d) * 10)
        return chr(48 + d)

    if exp < 0:
        out.append("0")
    else:
        out.extend(digit() for _ in range(exp + 1))
    out.append(".")
    zeros = min(n, max(0, -exp - 1))
    out.append("0" * zeros)
    out.extend(digit() for _ in range(n - zeros))
    return "".join(out)


def _atof(text: str, *, negative: bool) -> float:
    """``sqlite3AtoF`` of printf's ``digits.digits``: at most 19 significant digits,
    scaled by a power of ten in long double, then rounded to a double."""
    whole, _, frac = text.partition(".")
    s = exp = 0
    for i, ch in enumerate(whole):
        s = s * 10 + ord(ch) - 48
        if s >= _ATOF_LIMIT:
            exp += len(whole) - i - 1      # the digits it skips only shift the point
            break
    for ch in frac:
        if s >= _ATOF_LIMIT:
            break
        s = s * 10 + ord(ch) - 48
        exp -= 1
    if s == 0:
        return -0.0 if negative else 0.0
    while exp < 0 and s % 10 == 0:          # reduce the exponent while it is exact
        s //= 10
        exp += 1
    while exp > 0 and s < (2**63 - 1) // 10:
        s *= 10
        exp -= 1
    if exp == 0:
        result = float(s)
    else:
        e, scale = abs(exp), Fraction(1)
        while e % 22:
            scale = ld(scale * 10)
            e -= 1
        while e > 0:
            scale = ld(scale * _TEN_22)
            e -= 22
        result = float(ld(s / scale) if exp < 0 else ld(s * scale))
    return -result if negative else result
