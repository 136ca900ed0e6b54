#!/usr/bin/env python3
"""The peer for benches/peer.sh: Quix Streams (PyPI) running weir's taxi
pipeline — Kafka → taxi enrichment → PostgreSQL — in one Python process.

    quix_taxi.py BROKERS TOPIC GROUP PG_DSN TABLE RECORDS COMMIT_SECONDS

The enrichment is the class of weir's Python plugin
(plugins/python/taxi-enrich, with sdk/python/src on PYTHONPATH), run by
native CPython on each record, so both sides compute the same values. Each
enriched record is mapped to the same 15 columns as
benches/kafka-taxi-postgres.toml and written by Quix Streams' own
PostgreSQLSink into TABLE, which this script creates with weir's column
types first (the sink's schema inference would type the timestamps as text).
The sink writes at each Quix checkpoint (every COMMIT_SECONDS).

Prints one line: the seconds from the first record processed until the
application stopped (after RECORDS records, its final checkpoint committed),
and the rows now in TABLE.
"""

import json
import sys
import time

import psycopg2
from quixstreams import Application
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from taxi_enrich import TaxiEnrich
from weir_sdk import Invalid, Record

# (column, SQL type, field of the enriched record): as in kafka-taxi-postgres.toml.
COLUMNS = [
    ("vendor_id", "integer", "VendorID"),
    ("pickup_at", "timestamptz", "pickup_at"),
    ("dropoff_at", "timestamptz", "dropoff_at"),
    ("passenger_count", "integer", "passenger_count"),
    ("trip_distance", "double precision", "trip_distance"),
    ("pu_location_id", "integer", "PULocationID"),
    ("do_location_id", "integer", "DOLocationID"),
    ("fare_amount", "double precision", "fare_amount"),
    ("total_amount", "double precision", "total_amount"),
    ("trip_duration_min", "double precision", "trip_duration_min"),
    ("avg_speed_mph", "double precision", "avg_speed_mph"),
    ("fare_per_mile", "double precision", "fare_per_mile"),
    ("tip_pct", "double precision", "tip_pct"),
    ("pickup_hour", "smallint", "pickup_hour"),
    ("trip_category", "text", "trip_category"),
]


def main(brokers, topic, group, dsn, table, records, commit_seconds):
    records = int(records)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type, _ in COLUMNS)
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
    conn.close()

    transform = TaxiEnrich({})
    first = []

    def enrich(raw: bytes) -> dict:
        if not first:
            first.append(time.monotonic())
        try:
            out = transform.transform(Record(value=raw))
        except Invalid as e:
            # benches/peer.sh produces only valid trips; stop rather than
            # compare two tables of different inputs.
            raise SystemExit(f"quix_taxi: an invalid trip in the input: {e}")
        doc = json.loads(out.value)
        return {name: doc.get(field) for name, _, field in COLUMNS}

    pg = psycopg2.extensions.parse_dsn(dsn)
    app = Application(
        broker_address=brokers,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=float(commit_seconds),
        auto_create_topics=False,
        use_changelog_topics=False,
    )
    sdf = app.dataframe(app.topic(topic, value_deserializer="bytes"))
    sdf = sdf.apply(enrich)
    sdf.sink(
        PostgreSQLSink(
            host=pg.get("host", "127.0.0.1"),
            port=int(pg.get("port", 5432)),
            dbname=pg["dbname"],
            user=pg.get("user", "postgres"),
            password=pg.get("password", ""),
            table_name=table,
            schema_auto_update=False,
            include_metadata=False,
        )
    )
    app.run(count=records, collect=False)
    seconds = time.monotonic() - first[0]

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        rows = cur.fetchone()[0]
    conn.close()
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main(*sys.argv[1:8])
