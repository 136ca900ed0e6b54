"""weir_sdk natively: `PYTHONPATH=sdk/python/src pytest sdk/python`."""

import pytest

import weir_sdk
from weir_sdk import ConfigError, Failure, Header, Invalid, Record, Transform, time
from weir_sdk.numbers import display, json_number


class Halve(Transform):
    def transform(self, record):
        doc = record.json()
        if doc["n"] % 2:
            raise Invalid(f"{doc['n']} is odd")
        if doc["n"] == 0:
            return None
        return [record.with_json({"n": doc["n"] // 2})] * 2


def test_the_default_process_collects_outputs_and_turns_exceptions_into_failures():
    batch = [Record.from_json({"n": 4}), Record.from_json({"n": 3}), Record.from_json({"n": 0}),
             Record(value=b"not json")]
    out = Halve({}).process(batch, 0)
    assert [r.json() for r in out.outputs] == [{"n": 2}, {"n": 2}]
    assert out.failures[0] == Failure(1, "3 is odd")
    assert out.failures[1].index == 3 and out.failures[1].reason.startswith("JSONDecodeError: ")
    assert Halve.info().name == "halve" and Halve.info().state_version == 0


def test_plugin_faults_are_not_dead_lettered_but_stop_the_batch():
    class Broken(Transform):
        def transform(self, record):
            import no_such_module  # noqa: F401

    with pytest.raises(ImportError):
        Broken({}).process([Record(value=b"{}")], 0)


def test_records_keep_metadata_and_find_headers():
    r = Record.from_json({"a": 1}, key="k", timestamp_ms=5, headers=[Header("h", b"v")])
    assert r.key == b"k" and r.header("h") == b"v" and r.header("x") is None
    r2 = r.with_value(b"{}")
    assert (r2.key, r2.timestamp_ms, r2.headers) == (r.key, 5, r.headers)
    assert weir_sdk.dumps({"é": [1, 2.5]}) == '{"é":[1,2.5]}'.encode()
    # NaN and Infinity are Python's extension, not JSON: refused as Rust refuses them.
    with pytest.raises(ValueError, match="NaN is not JSON"):
        Record(value=b'{"t": NaN}').json()


def test_settings_merge_defaults_and_refuse_unknown_keys_and_wrong_types():
    s = weir_sdk.settings({"max-speed": 5}, {"max-speed": 1.0, "name": "x"})
    assert s.max_speed == 5.0 and s.name == "x"
    with pytest.raises(ConfigError, match="unknown key `speed`"):
        weir_sdk.settings({"speed": 1}, {"max-speed": 1.0})
    with pytest.raises(ConfigError, match="`name` must be str"):
        weir_sdk.settings({"name": 3}, {"name": "x"})


def test_numbers_are_written_as_rust_writes_them():
    cases = [(12.0, "12.0", "12"), (0.1, "0.1", "0.1"), (1e16, "1e16", "10000000000000000"),
             (1.5e-7, "1.5e-7", "0.00000015"), (-3.0, "-3.0", "-3"), (20 / 6, "3.3333333333333335", "3.3333333333333335")]
    for x, json_text, shown in cases:
        assert (json_number(x), display(x)) == (json_text, shown)
    assert json_number(float("nan")) == "null"


def test_timestamps_and_durations_are_read_as_the_rust_kit_reads_them():
    t = time.parse("2019-01-01 00:46:40")
    assert t.epoch_ms == 1_546_303_600_000 and t.hour() == 0 and t.weekday_name() == "Tuesday"
    assert time.parse("2019-01-01T01:46:40.250+01:00").epoch_ms == 1_546_303_600_250
    assert time.parse("2018-12-31T19:46:40-0500").epoch_ms == 1_546_303_600_000
    assert time.parse_json(1.5e12).epoch_ms == 1_500_000_000_000
    assert time.rfc3339(1_546_303_600_250) == "2019-01-01T00:46:40.250Z"
    for bad in ("2019-02-29 00:00:00", "01/01/2019 12:00", "2019-01-01T00:00:00+25:00", ""):
        with pytest.raises(ValueError, match="unparseable timestamp"):
            time.parse(bad)
    assert time.duration_ms("60s") == 60_000 and time.duration_ms("250ms") == 250
    with pytest.raises(ValueError, match="unknown unit"):
        time.duration_ms("5 days")
