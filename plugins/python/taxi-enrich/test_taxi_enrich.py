"""taxi-enrich's logic, natively (no WebAssembly): `pytest plugins/python/taxi-enrich`."""

import json

import pytest
from weir_sdk import ConfigError, Record

from taxi_enrich import TaxiEnrich

VALID = (
    '{"VendorID":1,"tpep_pickup_datetime":"2019-01-05 14:00:00",'
    '"tpep_dropoff_datetime":"2019-01-05 14:30:00","passenger_count":1,'
    '"trip_distance":6.0,"fare_amount":20.0,"tip_amount":4.0,"total_amount":25.3}'
)


def run(*values, config=None):
    batch = [Record(value=v.encode()) for v in values]
    return TaxiEnrich(config or {}).process(batch, 0)


def test_enriches_a_valid_trip_and_keeps_its_fields_byte_for_byte():
    out = run(VALID)
    assert out.failures == []
    value = out.outputs[0].value
    assert value.startswith(VALID[:-1].encode())
    doc = json.loads(value)
    assert doc["trip_duration_min"] == 30.0
    assert doc["avg_speed_mph"] == 12.0
    assert doc["fare_per_mile"] == 20.0 / 6.0
    assert doc["tip_pct"] == 20.0
    assert doc["pickup_hour"] == 14
    assert doc["pickup_day_of_week"] == "Saturday"
    assert doc["trip_category"] == "medium"
    assert doc["pickup_at"] == "2019-01-05T14:00:00Z"
    assert b'"trip_duration_min":30.0,' in value


def test_invalid_trips_fail_with_the_rust_plugins_reasons():
    out = run(
        VALID,
        VALID.replace("14:30:00", "13:30:00"),
        VALID.replace('"trip_distance":6.0', '"trip_distance":0'),
        VALID.replace('"fare_amount":20.0', '"fare_amount":-3'),
        VALID.replace('"trip_distance":6.0', '"trip_distance":200'),
        VALID.replace("2019-01-05 14:00:00", "not a time"),
        "[1,2]",
        '{"truncated":',
    )
    assert len(out.outputs) == 1
    reasons = {f.index: f.reason for f in out.failures}
    assert reasons[1] == "tpep_dropoff_datetime is not after tpep_pickup_datetime (-1800000 ms apart)"
    assert reasons[2] == "trip_distance 0 is not positive"
    assert reasons[3] == "fare_amount -3 is negative"
    assert reasons[4] == "average speed 400.0 mph is more than max-speed-mph 100"
    assert reasons[5].startswith('tpep_pickup_datetime: unparseable timestamp "not a time"')
    assert reasons[6] == "record is not a JSON object"
    assert reasons[7].startswith("invalid JSON: ")


def test_a_field_of_the_wrong_type_is_invalid_json_before_any_rule():
    out = run(VALID.replace('"trip_distance":6.0', '"trip_distance":"six"'))
    assert out.failures[0].reason.startswith("invalid JSON: trip_distance")


def test_rfc3339_offsets_and_epoch_millis_are_read_like_the_rust_kit():
    doc = json.loads(VALID)
    doc["tpep_pickup_datetime"] = "2019-01-05T15:00:00+01:00"
    doc["tpep_dropoff_datetime"] = 1546698600000
    out = run(json.dumps(doc))
    enriched = json.loads(out.outputs[0].value)
    assert enriched["pickup_at"] == "2019-01-05T14:00:00Z"
    assert enriched["pickup_hour"] == 15  # the writer's wall clock
    assert enriched["dropoff_at"] == "2019-01-05T14:30:00Z"


def test_config_overrides_thresholds_and_refuses_unknown_keys():
    out = run(VALID, config={"long-trip-miles": 5})
    assert json.loads(out.outputs[0].value)["trip_category"] == "long"
    with pytest.raises(ConfigError, match="max-sped-mph"):
        TaxiEnrich({"max-sped-mph": 1})
