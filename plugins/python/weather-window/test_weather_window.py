"""weather-window's logic, natively: `pytest plugins/python/weather-window`."""

import json

import pytest
from weir_sdk import ConfigError, Record

from weather_window import END_OF_INPUT_MS, WeatherWindow


def rec(doc) -> Record:
    return Record(value=json.dumps(doc).encode())


def parse(records):
    return [json.loads(r.value) for r in records]


def test_processing_time_windows_close_on_tick_with_count_avg_min_max():
    w = WeatherWindow({})
    out = w.process(
        [rec({"city": "Oslo", "temperature": 1}), rec({"city": "Oslo", "temperature": 4}),
         rec({"city": "Rome", "temperature": 20})],
        60_500,
    )
    assert out.outputs == [] and out.failures == []
    assert w.on_tick(119_999) == []
    records = w.on_tick(120_000)
    closed = parse(records)
    assert [c["city"] for c in closed] == ["Oslo", "Rome"]
    assert closed[0] == {
        "city": "Oslo", "window_start": "1970-01-01T00:01:00Z", "window_end": "1970-01-01T00:02:00Z",
        "count": 2, "avg_temperature": 2.5, "min_temperature": 1, "max_temperature": 4,
    }
    # Rust's Display of an f64: whole numbers without ".0".
    assert b'"min_temperature":1,"max_temperature":4}' in records[0].value
    assert records[0].key == b"Oslo" and records[0].timestamp_ms == 120_000


def test_event_time_uses_watermark_and_refuses_late_records():
    w = WeatherWindow({"time": "event", "window": "10s", "watermark-delay": "2s"})
    out = w.process(
        [rec({"city": "A", "temperature": 1, "timestamp": 1000}),
         rec({"city": "A", "temperature": 3, "timestamp": "1970-01-01T00:00:09Z"}),
         rec({"city": "A", "temperature": 5, "timestamp": 12500})],
        0,
    )
    closed = parse(out.outputs)
    assert len(closed) == 1 and closed[0]["count"] == 2 and closed[0]["avg_temperature"] == 2.0
    late = w.process([rec({"city": "A", "temperature": 9, "timestamp": 5000})], 0)
    assert late.failures[0].reason.startswith("late: window starting 1970-01-01T00:00:00Z")
    rest = parse(w.on_tick(END_OF_INPUT_MS))
    assert len(rest) == 1 and rest[0]["avg_temperature"] == 5.0


def test_open_windows_survive_snapshot_and_restore_in_the_rust_plugins_format():
    old = WeatherWindow({})
    old.process([rec({"city": "Oslo", "temperature": 2})], 1_000)
    state = old.snapshot()
    assert json.loads(state) == {
        "windows": [[0, "Oslo", {"count": 1, "sum": 2.0, "min": 2.0, "max": 2.0}]],
        "max_event_ms": None,
    }
    new = WeatherWindow({})
    new.restore(state)
    new.process([rec({"city": "Oslo", "temperature": 4})], 2_000)
    closed = parse(new.on_tick(60_000))
    assert closed[0]["count"] == 2 and closed[0]["avg_temperature"] == 3.0
    with pytest.raises(ValueError, match="state version 1"):
        new.restore(b"garbage")


def test_invalid_readings_fail_with_reasons_and_bad_config_is_refused():
    out = WeatherWindow({}).process([rec({"temperature": 1}), rec({"city": "X"}), Record(value=b"{")], 0)
    assert [f.reason for f in out.failures][:2] == [
        "city is missing or empty", "temperature is missing or not a number"]
    assert out.failures[2].reason.startswith("invalid JSON: ")
    with pytest.raises(ConfigError, match="window"):
        WeatherWindow({"window": "5 days"})
