"""How every panel writes a number: one rule for the run card, the pictures, ``%runs`` and ``jt.diff``.

Four significant digits, in fixed notation where that stays readable (1e-4 <= |v| < 1e6: ``0.9620``,
``0.0009680``, ``123457``) and scientific notation outside (``9.680e-5``, ``1.235e+7``); whole numbers
as whole numbers (``15``). Deltas carry their sign (``+0.01200``, ``-3``). The card's JSON carries both the
pre-formatted strings and ``NUMBER_FORMAT``, so the JupyterLab extension shows the same text.
"""

from __future__ import annotations

import math

SIGNIFICANT = 4
FIXED_MIN = 1e-4  # smaller magnitudes (other than 0) are written in scientific notation
FIXED_MAX = 1e6  # so are larger ones
NUMBER_FORMAT = {"significant": SIGNIFICANT, "fixed_min": FIXED_MIN, "fixed_max": FIXED_MAX}


def format_number(value: float | int | None, *, trim: bool = False) -> str:
    """``value`` with 4 significant digits; ``trim`` drops trailing zeros (axis ticks: ``0.2``, not ``0.2000``)."""
    if value is None:
        return "–"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < FIXED_MAX:
        return str(int(value))
    mantissa, exponent = f"{value:.{SIGNIFICANT - 1}e}".split("e")
    power = int(exponent)  # of the value rounded to 4 digits (9.99996 -> 1.000e+01)
    if FIXED_MIN <= abs(float(f"{mantissa}e{power}")) < FIXED_MAX:
        text = f"{value:.{max(0, SIGNIFICANT - 1 - power)}f}"
        return text.rstrip("0").rstrip(".") if trim and "." in text else text
    if trim:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{power:+d}"


def changed(value: float | None, reference: float | None) -> bool:
    """Whether ``value`` differs from ``reference`` by more than float noise (both finite numbers)."""
    if value is None or reference is None or not (math.isfinite(value) and math.isfinite(reference)):
        return False
    return abs(value - reference) > 1e-12 * max(abs(value), abs(reference))


def format_delta(value: float | None, reference: float | None) -> str:
    """``value - reference`` with its sign (``+0.01200``, ``-3``); "" when they are equal or not comparable."""
    if not changed(value, reference):
        return ""
    delta = value - reference
    return ("+" if delta > 0 else "-") + format_number(abs(delta))
