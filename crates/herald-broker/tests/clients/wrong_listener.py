"""A confluent-kafka client configured for SASL or TLS against the plaintext listener.

  wrong_listener.py --bootstrap HOST:PORT --protocol SASL_PLAINTEXT|SSL

Asks for cluster metadata with security.protocol set to --protocol (SASL: mechanism
PLAIN, a made-up user), which must fail within 10 s. Prints {"failed": true,
"errors": [...]} with what the client reported: its errors and its log lines.
"""

import argparse
import logging

from _common import die, emit, import_client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--protocol", required=True)
    args = p.parse_args()
    import_client("confluent")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors = []

    class Collect(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage())

    logger = logging.getLogger("librdkafka")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": args.protocol,
        "socket.timeout.ms": 5000,
        "reconnect.backoff.ms": 200,
    }
    if args.protocol.startswith("SASL"):
        config.update({"sasl.mechanism": "PLAIN", "sasl.username": "app", "sasl.password": "not-a-secret"})
    admin = AdminClient(config, error_cb=lambda e: errors.append(str(e)), logger=logger)
    try:
        admin.list_topics(timeout=10)
    except KafkaException as e:
        errors.append(str(e))
        # Log lines reach the logger from poll().
        for _ in range(10):
            admin.poll(0.1)
        emit({"failed": True, "errors": errors})
        return
    die(f"metadata over {args.protocol} to a plaintext listener succeeded; errors: {errors}")


if __name__ == "__main__":
    main()
