"""Timestamps and durations as weir's Rust plugin kit reads and writes them
(``weir_plugin_kit::time`` and ``::duration``), without ``datetime``: the
same accepted forms, the same instants, the same error texts.

Accepted timestamps: ``2019-01-01 00:46:40`` (NYC TLC, no offset), RFC 3339
(``2019-01-01T00:46:40.5Z``, ``…+01:00``), and epoch milliseconds as a JSON
number or an all-digit string. Text without an offset is read as UTC for its
instant and keeps its wall clock for hour and day of week.
"""

from __future__ import annotations

from typing import NamedTuple

from weir_sdk.numbers import display

__all__ = ["Timestamp", "parse", "parse_json", "rfc3339", "duration_ms"]

MS_PER_DAY = 86_400_000
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Timestamp(NamedTuple):
    """An instant (``epoch_ms``, UTC) and the writer's wall clock (``local_ms``)."""

    epoch_ms: int
    local_ms: int

    def hour(self) -> int:
        """Hour of day (0–23) on the writer's wall clock."""
        return self.local_ms % MS_PER_DAY // 3_600_000

    def weekday_name(self) -> str:
        """English day of week on the writer's wall clock."""
        return _WEEKDAYS[(self.local_ms // MS_PER_DAY + 3) % 7]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def rfc3339(epoch_ms: int) -> str:
    """``2019-01-01T00:46:40Z``, with milliseconds only when not zero."""
    days, in_day = divmod(epoch_ms, MS_PER_DAY)
    year, month, day = civil_from_days(days)
    secs, millis = divmod(in_day, 1000)
    text = f"{year:04}-{month:02}-{day:02}T{secs // 3600:02}:{secs // 60 % 60:02}:{secs % 60:02}"
    return f"{text}.{millis:03}Z" if millis else text + "Z"


def _digits(b: bytes, at: int, length: int) -> int | None:
    part = b[at : at + length]
    if len(part) != length or not part.isdigit():
        return None
    return int(part)


def _datetime(b: bytes) -> Timestamp | None:
    year, month, day = _digits(b, 0, 4), _digits(b, 5, 2), _digits(b, 8, 2)
    hour, minute, second = _digits(b, 11, 2), _digits(b, 14, 2), _digits(b, 17, 2)
    if None in (year, month, day, hour, minute, second):
        return None
    if b[4:5] != b"-" or b[7:8] != b"-" or b[10:11] not in (b"T", b"t", b" ") or b[13:14] != b":" or b[16:17] != b":":
        return None
    leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= (29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]):
        return None
    at, millis = 19, 0
    if b[at : at + 1] == b".":
        at += 1
        start = at
        while b[at : at + 1].isdigit():
            at += 1
        if at == start:
            return None
        millis = int((b[start:at] + b"00")[:3])
    rest = b[at:]
    if rest in (b"", b"Z", b"z"):
        offset = 0
    elif rest[:1] in (b"+", b"-"):
        oh = _digits(rest, 1, 2)
        if rest[3:4] == b":":
            om, end = _digits(rest, 4, 2), 6
        else:
            om, end = _digits(rest, 3, 2), 5
        if oh is None or om is None or end != len(rest) or oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60_000 * (-1 if rest[:1] == b"-" else 1)
    else:
        return None
    local = (
        days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute) * 60 + second) * 1000
        + millis
    )
    return Timestamp(local - offset, local)


def parse(text: str) -> Timestamp:
    """A textual timestamp; ``ValueError`` quotes it and the accepted forms."""
    t = text.strip()
    b = t.encode()
    if b and b.isdigit():
        ms = int(b)
        if ms < 2**63:
            return Timestamp(ms, ms)
    else:
        parsed = _datetime(b)
        if parsed is not None:
            return parsed
    raise ValueError(
        f"unparseable timestamp {_quoted(text)}: "
        "expected `YYYY-MM-DD HH:MM:SS`, RFC 3339 or epoch milliseconds"
    )


def parse_json(raw: str | int | float) -> Timestamp:
    """A timestamp field as JSON gave it: text, or a number of epoch ms."""
    if isinstance(raw, str):
        return parse(raw)
    ms = float(raw)
    if ms != ms or abs(ms) >= 1e17:
        raise ValueError(f"timestamp {display(ms)} is out of range")
    return Timestamp(int(ms), int(ms))


def _quoted(text: str) -> str:
    """Rust's ``{:?}`` of a string (the common cases)."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def duration_ms(text: str) -> int:
    """``"250ms"``, ``"60s"``, ``"5m"``, ``"1h"`` or a bare number of ms."""
    t = text.strip()
    split = next((i for i, c in enumerate(t) if not ("0" <= c <= "9")), len(t))
    digits, unit = t[:split], t[split:].strip()
    if not digits:
        raise ValueError(f'invalid duration {_quoted(t)}: expected e.g. "500ms", "60s", "5m", "1h"')
    factors = {"": 1, "ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000}
    if unit not in factors:
        raise ValueError(
            f"invalid duration {_quoted(t)}: unknown unit {_quoted(unit)} (use ms, s, m or h)"
        )
    return int(digits) * factors[unit]
