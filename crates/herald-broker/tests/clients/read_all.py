"""Read every record of a topic up to its end and write the values, one per line.

  read_all.py --bootstrap HOST:PORT --topic T --partitions N --out F

Assigns partitions 0..N-1 from offset 0 (no group) and reads each up to the high
watermark it has when the script starts (ListOffsets). Prints {"records": n,
"end_offsets": {...}}. Exits 1 if the end is not reached within 40 s.
"""

import argparse
import sys
import time

from _common import die, emit, import_client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import_client("confluent")
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "herald-read-all-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    ends = {}
    for part in range(args.partitions):
        _low, high = c.get_watermark_offsets(TopicPartition(args.topic, part), timeout=15)
        ends[part] = high
    c.assign([TopicPartition(args.topic, part, 0) for part in range(args.partitions)])
    positions = {part: 0 for part in range(args.partitions)}
    values = []
    deadline = time.monotonic() + 40
    while any(positions[q] < ends[q] for q in ends):
        if time.monotonic() > deadline:
            die(f"read to {positions} of end offsets {ends} in 40 s")
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            die(f"consume error: {msg.error()}")
        if msg.offset() < ends[msg.partition()]:
            values.append(msg.value())
        positions[msg.partition()] = msg.offset() + 1
    c.close()
    with open(args.out, "wb") as f:
        f.write(b"".join(v + b"\n" for v in values))
    emit({"records": len(values), "end_offsets": {str(k): v for k, v in ends.items()}})


if __name__ == "__main__":
    sys.exit(main())
