"""Topic configs through confluent-kafka's AdminClient, as an operator script does it.

  admin_configs.py --bootstrap HOST:PORT --topic T

With the topic T existing: `alter_configs` (the legacy AlterConfigs API, KIP-133) sets
retention.ms and max.message.bytes; `describe_configs` must then show both as topic
overrides; a second `alter_configs` naming only retention.ms returns max.message.bytes to
its default; one naming an unknown key must fail and change nothing. Then
message.timestamp.type=LogAppendTime: a record produced with timestamp 1000 must be
consumed with the broker's append time and type LOG_APPEND_TIME. Last, describe_cluster
(DescribeCluster). Prints {"retention.ms": ..., "max.message.bytes": ..., "refused":
"...", "timestamp": [type, ms], "cluster": {"id", "nodes", "controller",
"describe_allowed"}} with the final values.
"""

import argparse

from _common import die, emit, import_client


def describe(admin, ConfigResource, topic):
    res = ConfigResource("topic", topic)
    configs = admin.describe_configs([res])[res].result(timeout=15)
    return {name: (entry.value, entry.is_default) for name, entry in configs.items()}


def alter(admin, ConfigResource, topic, configs):
    res = ConfigResource("topic", topic, set_config=configs)
    admin.alter_configs([res])[res].result(timeout=15)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    args = p.parse_args()
    import_client("confluent")
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = args.topic

    alter(admin, ConfigResource, topic, {"retention.ms": "90000", "max.message.bytes": "5000"})
    got = describe(admin, ConfigResource, topic)
    if got.get("retention.ms") != ("90000", False) or got.get("max.message.bytes") != ("5000", False):
        die(f"after the first alter_configs: {got}")

    alter(admin, ConfigResource, topic, {"retention.ms": "120000"})
    got = describe(admin, ConfigResource, topic)
    if got.get("retention.ms") != ("120000", False):
        die(f"retention.ms after the second alter_configs: {got.get('retention.ms')}")
    if got.get("max.message.bytes", (None, False))[1] is not True:
        die(f"max.message.bytes not back to its default: {got.get('max.message.bytes')}")

    refused = None
    try:
        alter(admin, ConfigResource, topic, {"no.such.config": "1"})
    except Exception as e:  # noqa: BLE001
        refused = str(e)
    if refused is None:
        die("alter_configs with an unknown key was accepted")
    got = describe(admin, ConfigResource, topic)

    from confluent_kafka import Consumer, Producer

    alter(admin, ConfigResource, topic, {"message.timestamp.type": "LogAppendTime"})
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    producer.produce(topic, value=b"stamped", timestamp=1000)
    if producer.flush(15) != 0:
        die("the record was not delivered")
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "admin-configs",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    msg = None
    for _ in range(30):
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            break
    consumer.close()
    if msg is None or msg.error() is not None:
        die(f"no record consumed: {msg and msg.error()}")
    got["timestamp"] = list(msg.timestamp())
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=15)
    emit(
        {
            "retention.ms": got["retention.ms"][0],
            "max.message.bytes": got["max.message.bytes"][0],
            "refused": refused,
            "timestamp": got["timestamp"],
            "cluster": {
                "id": cluster.cluster_id,
                "nodes": len(cluster.nodes),
                "controller": cluster.controller.id,
                "describe_allowed": any(op.name == "DESCRIBE" for op in cluster.authorized_operations or []),
            },
        }
    )


if __name__ == "__main__":
    main()
