"""A Kafka client authenticating with SASL against `herald serve`.

  client.py CLIENT --bootstrap HOST:PORT --protocol SASL_PLAINTEXT|SASL_SSL
            --mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 --user NAME --topic T [--ca CA]

CLIENT is confluent, kafka-python or aiokafka. The password comes from the environment
variable SASL_PASSWORD, never from the command line. Produces one record to T and reads
it back. Prints {"ok": true, "value": "..."}; on failure exits 1 with the client's errors.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def confluent(args, password):
    import logging

    from confluent_kafka import Consumer, Producer

    errors = []

    class Collect(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage())

    logger = logging.getLogger("librdkafka")
    logger.addHandler(Collect())
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": args.protocol,
        "sasl.mechanism": args.mechanism,
        "sasl.username": args.user,
        "sasl.password": password,
    }
    if args.ca:
        config["ssl.ca.location"] = args.ca
    producer = Producer({**config, "acks": "all"}, error_cb=lambda e: errors.append(str(e)), logger=logger)
    producer.produce(args.topic, value=b"authenticated")
    if producer.flush(args.timeout) != 0:
        for _ in range(5):
            producer.poll(0.1)
        fail(f"not delivered; errors: {errors}")
    consumer = Consumer({**config, "group.id": "sasl-reader", "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consumer error {msg.error()}")
        consumer.close()
        return msg.value().decode()
    fail("nothing consumed")


def kafka_python(args, password):
    from kafka import KafkaConsumer, KafkaProducer

    config = dict(
        bootstrap_servers=args.bootstrap,
        security_protocol=args.protocol,
        sasl_mechanism=args.mechanism,
        sasl_plain_username=args.user,
        sasl_plain_password=password,
    )
    if args.ca:
        config["ssl_cafile"] = args.ca
    producer = KafkaProducer(acks="all", request_timeout_ms=int(args.timeout * 1000), **config)
    producer.send(args.topic, b"authenticated").get(timeout=args.timeout)
    producer.close()
    consumer = KafkaConsumer(args.topic, auto_offset_reset="earliest", consumer_timeout_ms=20000, **config)
    for msg in consumer:
        consumer.close()
        return msg.value.decode()
    fail("nothing consumed")


def aiokafka(args, password):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    config = dict(
        bootstrap_servers=args.bootstrap,
        security_protocol=args.protocol,
        sasl_mechanism=args.mechanism,
        sasl_plain_username=args.user,
        sasl_plain_password=password,
    )
    if args.ca:
        config["ssl_context"] = ssl.create_default_context(cafile=args.ca)

    async def run():
        producer = AIOKafkaProducer(acks="all", request_timeout_ms=int(args.timeout * 1000), **config)
        await producer.start()
        try:
            await producer.send_and_wait(args.topic, b"authenticated")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(args.topic, auto_offset_reset="earliest", **config)
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), 20)
            return msg.value.decode()
        finally:
            await consumer.stop()

    return asyncio.run(run())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("client", choices=["confluent", "kafka-python", "aiokafka"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--protocol", required=True)
    p.add_argument("--mechanism", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--ca")
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    password = os.environ["SASL_PASSWORD"]
    run = {"confluent": confluent, "kafka-python": kafka_python, "aiokafka": aiokafka}[args.client]
    try:
        value = run(args, password)
    except Exception as e:  # the client's own error is the result
        fail(f"{type(e).__name__}: {e}")
    print(json.dumps({"ok": True, "value": value}), flush=True)


if __name__ == "__main__":
    main()
