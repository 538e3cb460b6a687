"""Value normalisation shared by index extraction and search: strings, dates, numbers, references.

https://hl7.org/fhir/R4/search.html#ptypes
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "date_range",
    "fold",
    "format_instant",
    "number_range",
    "parse_reference",
]

DATE_MIN = "0001-01-01T00:00:00.000000Z"
DATE_MAX = "9999-12-31T23:59:59.999999Z"

_DATE_RE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_ONE_US = timedelta(microseconds=1)
_MIN_DT = datetime(1, 1, 1, tzinfo=UTC)
_MAX_DT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_REF_TYPE_RE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_REF_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def fold(s: str) -> str:
    """Fold a string for matching: lowercase, accents removed, whitespace collapsed.

    https://hl7.org/fhir/R4/search.html#string
    """
    if s.isascii():
        return " ".join(s.lower().split())
    decomposed = unicodedata.normalize("NFKD", s)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.lower().split())


def format_instant(dt: datetime) -> str:
    """Render a UTC datetime in the fixed-width index form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def date_range(value: str) -> tuple[str, str] | None:
    """The UTC interval ``(low, high)`` covered by a FHIR date, dateTime or instant, or None.

    https://hl7.org/fhir/R4/search.html#date
    """
    if not isinstance(value, str):
        return None
    m = _DATE_RE.fullmatch(value.strip())
    if m is None:
        return None
    g = m.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            high = datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
            return format_instant(low), format_instant(high)
        month = int(g["m"])
        if g["d"] is None:
            last = calendar.monthrange(year, month)[1]
            low = datetime(year, month, 1, tzinfo=UTC)
            high = datetime(year, month, last, 23, 59, 59, 999999, tzinfo=UTC)
            return format_instant(low), format_instant(high)
        day = int(g["d"])
        if g["H"] is None:
            low = datetime(year, month, day, tzinfo=UTC)
            high = datetime(year, month, day, 23, 59, 59, 999999, tzinfo=UTC)
            return format_instant(low), format_instant(high)
        hour, minute = int(g["H"]), int(g["M"])
        if g["S"] is None:
            low = datetime(year, month, day, hour, minute, tzinfo=UTC)
            span = timedelta(minutes=1)
        else:
            frac = g["f"] or ""
            digits = min(len(frac), 6)
            micro = int(frac[:6].ljust(6, "0")) if frac else 0
            low = datetime(year, month, day, hour, minute, int(g["S"]), micro, tzinfo=UTC)
            span = timedelta(microseconds=10 ** (6 - digits))
        tz = g["tz"]
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            hours, minutes = int(tz[1:3]), int(tz[4:6])
            if hours > 14 or minutes > 59:
                return None
            offset = timedelta(hours=hours, minutes=minutes) * sign
            low = _shift(low, -offset)
        high = _shift(low, span - _ONE_US)
        return format_instant(low), format_instant(high)
    except (ValueError, OverflowError):
        return None


def _shift(dt: datetime, delta: timedelta) -> datetime:
    try:
        return dt + delta
    except OverflowError:
        return _MIN_DT if delta < timedelta(0) else _MAX_DT


def number_range(value: object) -> tuple[float, float, float] | None:
    """``(value, low, high)`` for a FHIR decimal/integer, low/high from its implicit precision.

    https://hl7.org/fhir/R4/search.html#number
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return float(d), float(d - half), float(d + half)


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None] | None:
    """Split a Reference.reference into ``(type, id, absolute url)``; None for ``#contained``.

    https://hl7.org/fhir/R4/references.html#literal
    """
    if not ref or ref.startswith("#"):
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    absolute = "://" in ref
    if len(parts) >= 2 and (not absolute or len(parts) >= 5):
        rtype, rid = parts[-2], parts[-1]
        if _REF_TYPE_RE.fullmatch(rtype) and _REF_ID_RE.fullmatch(rid):
            return rtype, rid, (ref if absolute else None)
    return None, None, ref
