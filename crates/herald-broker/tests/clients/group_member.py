"""One confluent-kafka (librdkafka) consumer in a consumer group, driven by the test.

  group_member.py --bootstrap HOST:PORT --group G --topic T [--session-timeout-ms 6000]
                  [--consume N] [--instance-id ID]

Prints JSON lines as things happen:
  {"event": "assigned", "partitions": [...]}   the member's whole assignment after a rebalance
  {"event": "revoked", "partitions": [...]}
  {"event": "record", "partition": p, "offset": o}   with --consume, each record read
  {"event": "committed", "offsets": {"p": next offset}}   with --consume, after N records
  {"event": "closed"}
With --consume N it reads N records, committing each one synchronously, prints the
committed offsets, closes the consumer and exits. Otherwise it polls until its stdin
says "close" (or is closed), then closes the consumer (LeaveGroup) and exits. With
--instance-id it is a static member (group.instance.id, KIP-345): closing it sends no
LeaveGroup, so its partitions wait for it until its session times out.
Exits 1 on a consumer error. HERALD_CLIENT_DEBUG=cgrp,protocol turns on librdkafka's
debug log (on stderr, shown when a test fails).
"""

import argparse
import os
import queue
import sys
import threading
import time

from _common import die, emit, import_client

TIMEOUT_S = 50


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--session-timeout-ms", type=int, default=6000)
    p.add_argument("--consume", type=int, default=0)
    p.add_argument("--instance-id")
    args = p.parse_args()
    import_client("confluent")
    from confluent_kafka import Consumer, KafkaException

    errors = []
    debug = {"debug": os.environ["HERALD_CLIENT_DEBUG"]} if os.environ.get("HERALD_CLIENT_DEBUG") else {}
    static = {"group.instance.id": args.instance_id} if args.instance_id else {}
    c = Consumer(
        {
            **debug,
            **static,
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": 500,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # Eager range assignment: every rebalance hands each member its whole set.
            "partition.assignment.strategy": "range",
        },
        error_cb=lambda e: errors.append(str(e)),
    )

    def on_assign(consumer, parts):
        emit({"event": "assigned", "partitions": sorted(tp.partition for tp in parts)})

    def on_revoke(consumer, parts):
        emit({"event": "revoked", "partitions": sorted(tp.partition for tp in parts)})

    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)

    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("close")

    threading.Thread(target=read_stdin, daemon=True).start()

    consumed = 0
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        if args.consume and consumed >= args.consume:
            break
        if not args.consume:
            try:
                if commands.get_nowait() == "close":
                    break
            except queue.Empty:
                pass
        elif time.monotonic() > deadline:
            die(f"consumed {consumed} of {args.consume} records in {TIMEOUT_S}s; errors: {errors}")
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            die(f"consumer error: {msg.error()}; errors: {errors}")
        if args.consume:
            emit({"event": "record", "partition": msg.partition(), "offset": msg.offset()})
            try:
                c.commit(message=msg, asynchronous=False)
            except KafkaException as e:
                die(f"commit of partition {msg.partition()} offset {msg.offset()} failed: {e}")
            consumed += 1

    if args.consume:
        committed = c.committed(c.assignment(), timeout=10)
        emit({"event": "committed", "offsets": {str(tp.partition): tp.offset for tp in committed}})
    c.close()
    emit({"event": "closed"})


if __name__ == "__main__":
    sys.exit(main())
