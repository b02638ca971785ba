"""Produce numbered records as fast as the broker takes them, and record each one the
broker acknowledged, for the kill -9 test (crates/herald-cli/tests/kill9.rs).

  acked_producer.py --bootstrap HOST:PORT --topic T --partitions N --acks-file F

Creates the topic with N partitions (confluent-kafka's AdminClient), then produces
values "0", "1", ... with acks=all. Each delivery report without error appends the
record's id to F at once (one unbuffered write per line), so every id in F was
acknowledged before whatever happens next. Runs until killed; prints
{"event": "producing"} once the topic exists. Exits 1 on any delivery error that is
not the broker going away.
"""

import argparse
import os
import sys

from _common import die, emit, import_client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--acks-file", required=True)
    args = p.parse_args()
    import_client("confluent")
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)], operation_timeout=10)
    for topic, f in futures.items():
        try:
            f.result(timeout=15)
        except Exception as e:  # noqa: BLE001
            die(f"create topic {topic}: {e}")

    acks = os.open(args.acks_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            # Keep retrying while the broker is gone: the test kills this process.
            "message.timeout.ms": 300000,
        }
    )

    def on_delivery(err, msg):
        if err is None:
            os.write(acks, msg.value() + b"\n")
        elif err.code() not in (KafkaError._TRANSPORT, KafkaError._MSG_TIMED_OUT,
                                KafkaError._ALL_BROKERS_DOWN):
            die(f"delivery of {msg.value()!r} failed: {err}")

    emit({"event": "producing"})
    for i in range(10_000_000):
        while True:
            try:
                producer.produce(args.topic, value=str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)


if __name__ == "__main__":
    sys.exit(main())
