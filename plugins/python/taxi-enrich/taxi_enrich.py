"""taxi-enrich in Python: the Rust plugin's validation and trip metrics,
record for record (the same outputs and the same failure reasons).

Input: one JSON object per record with NYC TLC's field names. Output: the
same bytes with ``pickup_at``, ``dropoff_at``, ``trip_duration_min``,
``avg_speed_mph``, ``fare_per_mile``, ``tip_pct``, ``pickup_hour``,
``pickup_day_of_week`` and ``trip_category`` appended before the closing
brace, so every input field is kept exactly.
"""

from __future__ import annotations

import weir_sdk
from weir_sdk import Invalid, Record, Transform, time
from weir_sdk.numbers import display, json_number

_WHITESPACE = b" \t\n\r\x0c"


def _time(raw, field: str) -> time.Timestamp:
    if raw is None:
        raise Invalid(f"{field} is missing")
    try:
        return time.parse_json(raw)
    except ValueError as e:
        raise Invalid(f"{field}: {e}") from None


def _fields(doc: dict) -> tuple:
    """The five fields the enrichment reads, type-checked first as the Rust
    plugin's deserialiser does (a wrong type fails before any rule)."""
    out = []
    for field, want in _FIELDS:
        value = doc.get(field)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, want):
                raise Invalid(
                    f"invalid JSON: {field}: expected {_EXPECTED[want]}, "
                    f"found {type(value).__name__}"
                )
            if want is _NUMBER:
                value = float(value)
        out.append(value)
    return tuple(out)


_NUMBER = (int, float)
_TIME = (str, int, float)
_EXPECTED = {_NUMBER: "a number", _TIME: "a timestamp string or epoch milliseconds"}
_FIELDS = (
    ("tpep_pickup_datetime", _TIME),
    ("tpep_dropoff_datetime", _TIME),
    ("trip_distance", _NUMBER),
    ("fare_amount", _NUMBER),
    ("tip_amount", _NUMBER),
)


class TaxiEnrich(Transform):
    name = "taxi-enrich"
    version = "1.0.0"

    def __init__(self, config: dict):
        self.settings = weir_sdk.settings(
            config,
            {
                "max-speed-mph": 100.0,
                "max-distance-miles": 250.0,
                "max-duration-hours": 24.0,
                "short-trip-miles": 2.0,
                "long-trip-miles": 10.0,
            },
        )

    def metrics(self, value: bytes) -> bytes:
        """The fields to append (starting with a comma), or ``Invalid``."""
        s = self.settings
        if not value.lstrip(_WHITESPACE).startswith(b"{"):
            raise Invalid("record is not a JSON object")
        try:
            doc = weir_sdk.loads(value)
        except ValueError as e:
            raise Invalid(f"invalid JSON: {e}") from None
        raw_pickup, raw_dropoff, distance, fare, tip = _fields(doc)
        pickup_at = _time(raw_pickup, "tpep_pickup_datetime")
        pickup = pickup_at.epoch_ms
        dropoff = _time(raw_dropoff, "tpep_dropoff_datetime").epoch_ms
        if dropoff <= pickup:
            raise Invalid(
                "tpep_dropoff_datetime is not after tpep_pickup_datetime "
                f"({dropoff - pickup} ms apart)"
            )
        duration_min = (dropoff - pickup) / 60_000.0
        if duration_min > s.max_duration_hours * 60.0:
            raise Invalid(
                f"trip lasts {duration_min / 60.0:.1f} h, "
                f"more than max-duration-hours {display(s.max_duration_hours)}"
            )
        if distance is None:
            raise Invalid("trip_distance is missing")
        if not distance > 0.0:
            raise Invalid(f"trip_distance {display(distance)} is not positive")
        if distance > s.max_distance_miles:
            raise Invalid(
                f"trip_distance {display(distance)} mi is more than "
                f"max-distance-miles {display(s.max_distance_miles)}"
            )
        if fare is None:
            raise Invalid("fare_amount is missing")
        if fare < 0.0:
            raise Invalid(f"fare_amount {display(fare)} is negative")
        speed = distance / (duration_min / 60.0)
        if speed > s.max_speed_mph:
            raise Invalid(
                f"average speed {speed:.1f} mph is more than "
                f"max-speed-mph {display(s.max_speed_mph)}"
            )
        tip = tip or 0.0
        if distance < s.short_trip_miles:
            category = "short"
        elif distance < s.long_trip_miles:
            category = "medium"
        else:
            category = "long"
        return (
            f',"pickup_at":"{time.rfc3339(pickup)}","dropoff_at":"{time.rfc3339(dropoff)}"'
            f',"trip_duration_min":{json_number(duration_min)}'
            f',"avg_speed_mph":{json_number(speed)}'
            f',"fare_per_mile":{json_number(fare / distance)}'
            f',"tip_pct":{json_number(tip / fare * 100.0) if fare > 0.0 else "null"}'
            f',"pickup_hour":{pickup_at.hour()}'
            f',"pickup_day_of_week":"{pickup_at.weekday_name()}"'
            f',"trip_category":"{category}"}}'
        ).encode()

    def transform(self, record: Record) -> Record:
        value = record.value
        end = value.rfind(b"}")
        head = value[:end] if end >= 0 else value
        fields = self.metrics(value)
        if head.rstrip(_WHITESPACE).endswith(b"{"):
            fields = fields[1:]  # an empty object: no comma before the first field
        return record.with_value(head + fields)
