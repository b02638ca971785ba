"""Read a topic from the beginning with one Kafka client and compare with a spec.

  consume.py --client confluent|kafka-python|aiokafka --bootstrap HOST:PORT --topic T
             --expect records.json --partitions N

Assigns partitions 0..N-1 directly (no consumer group), reads from offset 0 until it
has as many records as the spec holds (or 30 s pass), then compares partition, offset,
key, value, headers (in order, duplicates kept), timestamp and timestamp type with the
spec. Prints one JSON line {"client": ..., "records": [...]} and exits 1 on any
difference.
"""

import argparse
import asyncio
import sys
import time

from _common import compare, die, emit, import_client, load_spec, normalise

TIMEOUT_S = 30
# After the expected count is reached, keep reading this long so that duplicates or
# extra records show up as a mismatch instead of going unnoticed.
SETTLE_S = 0.5


class Until:
    """Loop condition: more records wanted, or the settle time after the last one."""

    def __init__(self, want):
        self.want = want
        self.deadline = time.monotonic() + TIMEOUT_S
        self.settle = None

    def more(self, have):
        now = time.monotonic()
        if have < self.want:
            return now < self.deadline
        if self.settle is None:
            self.settle = now + SETTLE_S
        return now < self.settle


def consume_confluent(args, want):
    from confluent_kafka import Consumer, TopicPartition

    errors = []
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "herald-interop-unused",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        },
        error_cb=lambda e: errors.append(e),
    )
    c.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    got = []
    until = Until(want)
    while until.more(len(got)):
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            die(f"confluent: consume error {msg.error()}")
        ts_type, ts = msg.timestamp()
        got.append(
            normalise(
                msg.partition(),
                msg.offset(),
                msg.key(),
                msg.value(),
                msg.headers(),
                ts,
                {1: "create", 2: "log_append"}.get(ts_type, str(ts_type)),
            )
        )
    c.close()
    if len(got) < want:
        die(f"confluent: read {len(got)} of {want} records in {TIMEOUT_S}s; client errors: {errors}")
    return got


def py_ts_type(t):
    return {0: "create", 1: "log_append"}.get(t, str(t))


def consume_kafka_python(args, want):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    until = Until(want)
    while until.more(len(got)):
        for _tp, msgs in c.poll(timeout_ms=100).items():
            for m in msgs:
                got.append(
                    normalise(
                        m.partition, m.offset, m.key, m.value, m.headers, m.timestamp,
                        py_ts_type(m.timestamp_type),
                    )
                )
    c.close()
    if len(got) < want:
        die(f"kafka-python: read {len(got)} of {want} records in {TIMEOUT_S}s")
    return got


async def consume_aiokafka(args, want):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await c.start()
    try:
        tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got = []
        until = Until(want)
        while until.more(len(got)):
            batches = await c.getmany(timeout_ms=100)
            for _tp, msgs in batches.items():
                for m in msgs:
                    got.append(
                        normalise(
                            m.partition, m.offset, m.key, m.value, m.headers, m.timestamp,
                            py_ts_type(m.timestamp_type),
                        )
                    )
    finally:
        await c.stop()
    if len(got) < want:
        die(f"aiokafka: read {len(got)} of {want} records in {TIMEOUT_S}s")
    return got


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", required=True)
    p.add_argument("--partitions", type=int, default=1)
    args = p.parse_args()
    import_client(args.client)
    expected = load_spec(args.expect)
    for r in expected:
        for k in ("key_b", "value_b", "headers_b"):
            del r[k]
    if args.client == "confluent":
        got = consume_confluent(args, len(expected))
    elif args.client == "kafka-python":
        got = consume_kafka_python(args, len(expected))
    else:
        got = asyncio.run(consume_aiokafka(args, len(expected)))
    compare(args.client, expected, got)
    emit({"client": args.client, "records": got})


if __name__ == "__main__":
    sys.exit(main())
