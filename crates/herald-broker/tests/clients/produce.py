"""Produce the records of a spec with one Kafka client, then report where each landed.

  produce.py --client confluent|kafka-python|aiokafka --bootstrap HOST:PORT --topic T
             --spec records.json [--compression none|gzip|snappy|lz4|zstd] [--idempotence]

Every record is sent with its key, value, headers, timestamp (CreateTime) and
partition, all before waiting, so that the client batches them. Prints one JSON line
{"client": ..., "delivered": [{"partition", "offset", "timestamp"}, ...]} in spec
order. Exits 1 if any record is not acknowledged.
"""

import argparse
import asyncio
import sys

from _common import (
    COMPRESSIONS,
    check_aiokafka_codec,
    check_kafka_python_codec,
    die,
    emit,
    import_client,
    load_spec,
    python_codec,
)

TIMEOUT_S = 30


def produce_confluent(args, recs):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": args.bootstrap,
        "compression.type": args.compression,
        "linger.ms": 20,
        "acks": "all",
        "message.timeout.ms": TIMEOUT_S * 1000,
        "enable.idempotence": args.idempotence,
    }
    errors = []
    producer = Producer(conf, error_cb=lambda e: errors.append(e))
    delivered = [None] * len(recs)

    def report(i):
        def cb(err, msg):
            if err is not None:
                die(f"confluent: record {i} not delivered: {err}")
            delivered[i] = {
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": msg.timestamp()[1],
            }

        return cb

    for i, r in enumerate(recs):
        producer.produce(
            args.topic,
            value=r["value_b"],
            key=r["key_b"],
            partition=r["partition"],
            timestamp=r["timestamp"],
            headers=r["headers_b"],
            on_delivery=report(i),
        )
    left = producer.flush(TIMEOUT_S)
    if left:
        die(f"confluent: {left} records unacknowledged after {TIMEOUT_S}s; client errors: {errors}")
    return delivered


def produce_kafka_python(args, recs):
    from kafka import KafkaProducer

    check_kafka_python_codec(args.compression)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        compression_type=python_codec(args.compression),
        acks="all",
        linger_ms=20,
        enable_idempotence=args.idempotence,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    futures = [
        producer.send(
            args.topic,
            value=r["value_b"],
            key=r["key_b"],
            headers=r["headers_b"],
            partition=r["partition"],
            timestamp_ms=r["timestamp"],
        )
        for r in recs
    ]
    producer.flush(TIMEOUT_S)
    delivered = []
    for i, f in enumerate(futures):
        try:
            md = f.get(timeout=TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - any failure is the test's failure
            die(f"kafka-python: record {i} not delivered: {e!r}")
        delivered.append({"partition": md.partition, "offset": md.offset, "timestamp": md.timestamp})
    producer.close(TIMEOUT_S)
    return delivered


async def produce_aiokafka_async(args, recs):
    from aiokafka import AIOKafkaProducer

    check_aiokafka_codec(args.compression)
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        compression_type=python_codec(args.compression),
        acks="all",
        linger_ms=20,
        enable_idempotence=args.idempotence,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                args.topic,
                value=r["value_b"],
                key=r["key_b"],
                headers=r["headers_b"],
                partition=r["partition"],
                timestamp_ms=r["timestamp"],
            )
            for r in recs
        ]
        delivered = []
        for i, f in enumerate(futures):
            try:
                md = await asyncio.wait_for(f, TIMEOUT_S)
            except Exception as e:  # noqa: BLE001
                die(f"aiokafka: record {i} not delivered: {e!r}")
            delivered.append({"partition": md.partition, "offset": md.offset, "timestamp": md.timestamp})
        return delivered
    finally:
        await producer.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--compression", default="none", choices=COMPRESSIONS)
    p.add_argument("--idempotence", action="store_true")
    args = p.parse_args()
    import_client(args.client)
    recs = load_spec(args.spec)
    if args.client == "confluent":
        delivered = produce_confluent(args, recs)
    elif args.client == "kafka-python":
        delivered = produce_kafka_python(args, recs)
    else:
        delivered = asyncio.run(produce_aiokafka_async(args, recs))
    for i, (r, d) in enumerate(zip(recs, delivered)):
        if d is None:
            die(f"{args.client}: record {i} has no delivery report")
        if d["partition"] != r["partition"]:
            die(f"{args.client}: record {i} went to partition {d['partition']}, asked {r['partition']}")
    emit({"client": args.client, "delivered": delivered})


if __name__ == "__main__":
    sys.exit(main())
