"""weather-window in Python: the Rust plugin's per-city tumbling windows
(count, average, min, max), with the same outputs and the same snapshot
format (state version 1), so a live hot swap between the two keeps every
open window.

Input ``{"city", "temperature", "timestamp"}``; the timestamp is read only
in event-time mode. One output per closed (window, city), key = city,
timestamp = window end, cities in byte order within a window.
"""

from __future__ import annotations

import json

import weir_sdk
from weir_sdk import BatchResult, Failure, Record, Transform, time
from weir_sdk.numbers import display

END_OF_INPUT_MS = 2**63 - 1


class WeatherWindow(Transform):
    name = "weather-window"
    version = "1.0.0"
    state_version = 1

    def __init__(self, config: dict):
        s = weir_sdk.settings(
            config,
            {"window": "60s", "time": "processing", "watermark-delay": "5s", "allowed-lateness": "0s"},
        )
        if s.time not in ("processing", "event"):
            raise weir_sdk.ConfigError(f"time: {s.time!r} is neither \"processing\" nor \"event\"")
        try:
            self.window_ms = _ms("window", s.window)
            self.watermark_delay_ms = _ms("watermark-delay", s.watermark_delay)
            self.allowed_lateness_ms = _ms("allowed-lateness", s.allowed_lateness)
        except ValueError as e:
            raise weir_sdk.ConfigError(str(e)) from None
        if self.window_ms <= 0:
            raise weir_sdk.ConfigError("window: must be longer than 0")
        self.event_time = s.time == "event"
        # Open windows: start -> city -> [count, sum, min, max].
        self.windows: dict[int, dict[str, list]] = {}
        self.max_event_ms: int | None = None

    def watermark(self) -> int | None:
        return None if self.max_event_ms is None else self.max_event_ms - self.watermark_delay_ms

    def closing_horizon(self, now_ms: int) -> int | None:
        if not self.event_time or now_ms == END_OF_INPUT_MS:
            return now_ms
        w = self.watermark()
        return None if w is None else w - self.allowed_lateness_ms

    def close_until(self, horizon: int | None, out: list) -> None:
        if horizon is None or not self.windows:
            return
        size = self.window_ms
        for start in sorted(self.windows):
            if start + size > horizon:
                break
            cities = self.windows.pop(start)
            for city in sorted(cities, key=str.encode):
                out.append(_window_record(start, start + size, city, cities[city]))

    def add(self, value: bytes, now_ms: int) -> None:
        try:
            doc = weir_sdk.loads(value)
        except ValueError as e:
            raise weir_sdk.Invalid(f"invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise weir_sdk.Invalid("invalid JSON: expected an object")
        city, t = doc.get("city"), doc.get("temperature")
        if city is not None and not isinstance(city, str):
            raise weir_sdk.Invalid("invalid JSON: city: expected a string")
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))):
            raise weir_sdk.Invalid("invalid JSON: temperature: expected a number")
        raw_ts = doc.get("timestamp")
        if raw_ts is not None and (isinstance(raw_ts, bool) or not isinstance(raw_ts, (str, int, float))):
            raise weir_sdk.Invalid("invalid JSON: timestamp: expected a timestamp string or epoch milliseconds")
        if city is None or not city.strip():
            raise weir_sdk.Invalid("city is missing or empty")
        if t is None:
            raise weir_sdk.Invalid("temperature is missing or not a number")
        t = float(t)
        at = now_ms
        if self.event_time:
            if raw_ts is None:
                raise weir_sdk.Invalid("timestamp is missing (required in event-time mode)")
            try:
                ts = time.parse_json(raw_ts).epoch_ms
            except ValueError as e:
                raise weir_sdk.Invalid(f"timestamp: {e}") from None
            start = ts // self.window_ms * self.window_ms
            horizon = self.closing_horizon(now_ms)
            if horizon is not None and start + self.window_ms <= horizon:
                w = self.watermark()
                raise weir_sdk.Invalid(
                    f"late: window starting {time.rfc3339(start)} already closed "
                    f"(watermark {time.rfc3339(ts if w is None else w)})"
                )
            self.max_event_ms = ts if self.max_event_ms is None else max(self.max_event_ms, ts)
            at = ts
        start = at // self.window_ms * self.window_ms
        cities = self.windows.setdefault(start, {})
        agg = cities.get(city)
        if agg is None:
            cities[city] = [1, t, t, t]
        else:
            agg[0] += 1
            agg[1] += t
            agg[2] = min(agg[2], t)
            agg[3] = max(agg[3], t)

    def process(self, records, now_ms: int) -> BatchResult:
        outputs: list = []
        failures: list = []
        if not self.event_time:
            self.close_until(now_ms, outputs)
        for index, record in enumerate(records):
            try:
                self.add(record.value, now_ms)
            except weir_sdk.Invalid as e:
                failures.append(Failure(index, str(e)))
        self.close_until(self.closing_horizon(now_ms), outputs)
        return BatchResult(outputs, failures)

    def on_tick(self, now_ms: int) -> list:
        out: list = []
        self.close_until(self.closing_horizon(now_ms), out)
        return out

    def snapshot(self) -> bytes:
        windows = [
            [start, city, {"count": a[0], "sum": a[1], "min": a[2], "max": a[3]}]
            for start in sorted(self.windows)
            for city, a in sorted(self.windows[start].items(), key=lambda kv: kv[0].encode())
        ]
        return json.dumps({"windows": windows, "max_event_ms": self.max_event_ms}).encode()

    def restore(self, state: bytes) -> None:
        windows: dict[int, dict[str, list]] = {}
        max_event_ms = None
        if state:
            try:
                doc = json.loads(state)
                for start, city, a in doc["windows"]:
                    agg = [int(a["count"]), float(a["sum"]), float(a["min"]), float(a["max"])]
                    windows.setdefault(int(start), {})[str(city)] = agg
                max_event_ms = doc.get("max_event_ms")
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"state is not weather-window state version 1: {e}") from None
        self.windows, self.max_event_ms = windows, max_event_ms


def _ms(key: str, text: str) -> int:
    try:
        return time.duration_ms(text)
    except ValueError as e:
        raise ValueError(f"{key}: {e}") from None


def _window_record(start: int, end: int, city: str, agg: list) -> Record:
    count, total, low, high = agg
    value = (
        f'{{"city":{json.dumps(city, ensure_ascii=False)},'
        f'"window_start":"{time.rfc3339(start)}","window_end":"{time.rfc3339(end)}",'
        f'"count":{count},"avg_temperature":{display(total / count)},'
        f'"min_temperature":{display(low)},"max_temperature":{display(high)}}}'
    )
    return Record(value=value.encode(), key=city.encode(), timestamp_ms=end)
