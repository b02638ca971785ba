"""Kafka and HTTPS clients against a `herald serve` with TLS listeners.

  client.py round-trip --bootstrap HOST:PORT --ca CA --topic T [--cert C --key K] [--timeout S]
      confluent-kafka with security.protocol=SSL (and a client certificate when given):
      produces three records, consumes them back. Prints {"values": [...]}; exits 1 with
      the client's errors when it cannot.
  client.py server-cert --address HOST:PORT --ca CA
      Python's ssl module: the certificate the server presents to a new connection, PEM.
      Prints {"pem": "..."}.
  client.py https-get --url URL --ca CA
      GET over HTTPS trusting CA. Prints {"status": N, "body": "..."}.
"""

import argparse
import json
import ssl
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def round_trip(args):
    from confluent_kafka import Consumer, Producer

    errors = []
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": args.ca,
        "ssl.endpoint.identification.algorithm": "https",
    }
    if args.cert:
        config.update({"ssl.certificate.location": args.cert, "ssl.key.location": args.key})
    producer = Producer({**config, "acks": "all"}, error_cb=lambda e: errors.append(str(e)))
    failed = []
    for i in range(3):
        producer.produce(
            args.topic,
            value=f"secret-{i}".encode(),
            on_delivery=lambda err, msg: err and failed.append(err.name()),
        )
    if producer.flush(args.timeout) != 0 or failed:
        fail(f"records not delivered: {failed}; errors: {errors}")
    consumer = Consumer(
        {**config, "group.id": "tls-reader", "auto.offset.reset": "earliest"},
        error_cb=lambda e: errors.append(str(e)),
    )
    consumer.subscribe([args.topic])
    values = []
    deadline = time.monotonic() + 30
    while len(values) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consumer error {msg.error()}; errors: {errors}")
        values.append(msg.value().decode())
    consumer.close()
    if len(values) < 3:
        fail(f"consumed {values}; errors: {errors}")
    print(json.dumps({"values": values}), flush=True)


def server_cert(args):
    host, port = args.address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=args.ca)
    import socket

    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    print(json.dumps({"pem": ssl.DER_cert_to_PEM_cert(der)}), flush=True)


def https_get(args):
    import urllib.request

    context = ssl.create_default_context(cafile=args.ca)
    with urllib.request.urlopen(args.url, context=context, timeout=10) as resp:
        print(json.dumps({"status": resp.status, "body": resp.read().decode()}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["round-trip", "server-cert", "https-get"])
    p.add_argument("--url")
    p.add_argument("--bootstrap")
    p.add_argument("--address")
    p.add_argument("--ca", required=True)
    p.add_argument("--topic")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    {"round-trip": round_trip, "server-cert": server_cert, "https-get": https_get}[args.mode](args)


if __name__ == "__main__":
    main()
