"""Two Kafka listeners of one `herald serve`, PLAINTEXT and SASL_PLAINTEXT, seen through
confluent-kafka: each client is told its own listener's address, the super user on the
SASL listener grants User:ANONYMOUS (the plaintext clients) one topic, and the plaintext
clients get exactly that.

  listeners.py --plain HOST:PORT --sasl HOST:PORT     (ADMIN_PASSWORD in the environment)

Prints one JSON object; the Rust test asserts on it.
"""

import argparse
import json
import os
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)


def brokers(config):
    md = AdminClient(config).list_topics(timeout=10)
    return [f"{b.host}:{b.port}" for b in md.brokers.values()]


def produce(config, topic):
    seen = []
    p = Producer({**config, "message.timeout.ms": 8000})
    p.produce(topic, value=b"anonymous", on_delivery=lambda err, msg: seen.append(err))
    p.flush(12)
    return "ok" if seen and seen[0] is None else (seen[0].name() if seen else "no report")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain", required=True)
    ap.add_argument("--sasl", required=True)
    args = ap.parse_args()
    plain = {"bootstrap.servers": args.plain}
    sasl = {
        "bootstrap.servers": args.sasl,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": os.environ["ADMIN_PASSWORD"],
    }
    admin = AdminClient(sasl)
    for name in ["public", "secret"]:
        admin.create_topics([NewTopic(name, 1)])[name].result(15)
    grants = [
        AclBinding(ResourceType.TOPIC, "public", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*", op, AclPermissionType.ALLOW)
        for op in (AclOperation.WRITE, AclOperation.READ)
    ] + [
        AclBinding(ResourceType.GROUP, "anon", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*", AclOperation.READ, AclPermissionType.ALLOW)
    ]
    futures = admin.create_acls(grants)
    for f in futures.values():
        f.result(15)
    out = {
        "plain_brokers": brokers(plain),
        "sasl_brokers": brokers(sasl),
        "plain_produce_public": produce(plain, "public"),
        "plain_produce_secret": produce(plain, "secret"),
        "sasl_produce_secret": produce(sasl, "secret"),
    }
    c = Consumer({**plain, "group.id": "anon", "auto.offset.reset": "earliest"})
    c.subscribe(["public"])
    got = "nothing"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        got = msg.error().name() if msg.error() else msg.value().decode()
        break
    c.close()
    out["plain_consume_public"] = got
    print(json.dumps(out))


if __name__ == "__main__":
    main()
