"""Tests {{class}} natively: `pytest`."""

from weir_sdk import Record

from {{module}} import {{class}}


def test_upper_cases_the_field_and_fails_a_record_without_it():
    out = {{class}}({}).process(
        [Record.from_json({"message": "hi"}), Record.from_json({"other": 1})], 0
    )
    assert [r.json() for r in out.outputs] == [{"message": "HI"}]
    assert [(f.index, f.reason) for f in out.failures] == [(1, "message is missing")]
