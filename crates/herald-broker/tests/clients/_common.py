"""Shared helpers of the client interop scripts run by tests/clients.rs.

A *spec* is a JSON file written by the Rust test: a list of records, each
{"partition": int, "offset": int|null, "key": hex|null, "value": hex|null,
 "headers": [[name, hex], ...], "timestamp": ms}.
Keys, values and header values are hex so that any bytes survive JSON.

Exit codes: 0 ok, 1 mismatch or client error (with a message on stderr),
77 the client library or codec is not installed (the test skips or fails).
"""

import json
import sys

SKIP = 77


def die(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def skip(msg):
    print(f"SKIP: {msg}", file=sys.stderr, flush=True)
    sys.exit(SKIP)


def emit(obj):
    """One JSON line on stdout, flushed at once (the Rust side reads line by line)."""
    print(json.dumps(obj, sort_keys=True), flush=True)


def unhex(h):
    return None if h is None else bytes.fromhex(h)


def tohex(b):
    return None if b is None else bytes(b).hex()


def load_spec(path):
    with open(path) as f:
        recs = json.load(f)
    for r in recs:
        r["key_b"] = unhex(r["key"])
        r["value_b"] = unhex(r["value"])
        r["headers_b"] = [(k, unhex(v)) for k, v in r["headers"]]
    return recs


def normalise(partition, offset, key, value, headers, timestamp, timestamp_type):
    """A consumed record in the spec's form, for comparison and output."""
    return {
        "partition": partition,
        "offset": offset,
        "key": tohex(key),
        "value": tohex(value),
        "headers": [[k, tohex(v)] for k, v in (headers or [])],
        "timestamp": timestamp,
        "timestamp_type": timestamp_type,
    }


def compare(client, expected, got):
    """Exits non-zero naming the first difference between the spec and the records read."""
    got = sorted(got, key=lambda r: (r["partition"], r["offset"]))
    exp = sorted(expected, key=lambda r: (r["partition"], r["offset"]))
    if len(got) != len(exp):
        die(f"{client}: expected {len(exp)} records, read {len(got)}: {json.dumps(got)[:2000]}")
    for i, (e, g) in enumerate(zip(exp, got)):
        for field in ("partition", "offset", "key", "value", "headers", "timestamp"):
            if e[field] != g[field]:
                die(
                    f"{client}: record {i} (partition {e['partition']} offset {e['offset']}): "
                    f"{field} is {g[field]!r}, expected {e[field]!r}"
                )
        if g["timestamp_type"] != "create":
            die(f"{client}: record {i}: timestamp type {g['timestamp_type']!r}, expected 'create'")


# librdkafka's names are the reference; kafka-python and aiokafka take None for "none".
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def python_codec(name):
    return None if name == "none" else name


def check_kafka_python_codec(name):
    from kafka import codec

    have = {
        "none": True,
        "gzip": codec.has_gzip(),
        "snappy": codec.has_snappy(),
        "lz4": codec.has_lz4(),
        "zstd": codec.has_zstd(),
    }
    if not have[name]:
        skip(f"kafka-python has no {name} codec here (pip install python-snappy lz4 zstandard)")


def check_aiokafka_codec(name):
    from aiokafka import codec

    have = {
        "none": True,
        "gzip": codec.has_gzip(),
        "snappy": codec.has_snappy(),
        "lz4": codec.has_lz4(),
        "zstd": codec.has_zstd(),
    }
    if not have[name]:
        skip(f"aiokafka has no {name} codec here (pip install cramjam)")


def import_client(client):
    try:
        if client == "confluent":
            import confluent_kafka  # noqa: F401
        elif client == "kafka-python":
            import kafka  # noqa: F401
        elif client == "aiokafka":
            import aiokafka  # noqa: F401
        else:
            die(f"unknown client {client!r}")
    except ImportError as e:
        skip(f"{client} is not installed in {sys.executable}: {e}")
