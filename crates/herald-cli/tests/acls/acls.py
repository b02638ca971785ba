"""ACLs and SCRAM users administered and enforced through confluent-kafka, as its users
configure it, against a `herald serve` with a SASL_PLAINTEXT listener.

  acls.py PHASE --bootstrap HOST:PORT

PHASE is `setup` (the super user creates a topic, a user and ACLs, then alice, bob and
carol are allowed or denied) or `after-restart` (the ACLs and the user made at run time
are still there). Passwords come from the environment (ADMIN_PASSWORD, ALICE_PASSWORD,
BOB_PASSWORD, CAROL_PASSWORD), never the command line. Prints one JSON object of what
each step saw; the Rust test asserts on it.
"""

import argparse
import json
import os
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)


def config(bootstrap, user):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": user,
        "sasl.password": os.environ[f"{user.upper()}_PASSWORD"],
    }


def code_of(exc):
    err = exc.args[0] if exc.args else None
    return err.name() if isinstance(err, KafkaError) else repr(exc)


def produce(bootstrap, user, topic, value):
    """The delivery result: "ok" or the error's name."""
    seen = []
    p = Producer({**config(bootstrap, user), "acks": "all", "message.timeout.ms": 8000})
    p.produce(topic, value=value, on_delivery=lambda err, msg: seen.append(err))
    p.flush(12)
    if not seen:
        return "no delivery report"
    return "ok" if seen[0] is None else seen[0].name()


def consume(bootstrap, user, topic, group):
    """The first record's value, or the first error's name."""
    c = Consumer(
        {
            **config(bootstrap, user),
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                return msg.error().name()
            return msg.value().decode()
        return "nothing"
    finally:
        c.close()


def high_watermark(bootstrap, topic):
    c = Consumer({**config(bootstrap, "admin"), "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def create_topic(bootstrap, user, name):
    admin = AdminClient(config(bootstrap, user))
    try:
        admin.create_topics([NewTopic(name, 1)], request_timeout=10)[name].result(15)
        return "ok"
    except KafkaException as e:
        return code_of(e)


def delete_topic(bootstrap, user, name):
    admin = AdminClient(config(bootstrap, user))
    try:
        admin.delete_topics([name], request_timeout=10)[name].result(15)
        return "ok"
    except KafkaException as e:
        return code_of(e)


def acl(kind, name, pattern, principal, operation, permission):
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


ANY_ACL = AclBindingFilter(
    ResourceType.ANY,
    None,
    ResourcePatternType.ANY,
    None,
    None,
    AclOperation.ANY,
    AclPermissionType.ANY,
)


def setup(bootstrap):
    out = {}
    admin = AdminClient(config(bootstrap, "admin"))
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(15)
    # A user made at run time (KIP-554), then described with the others.
    done = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                "carol",
                ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                os.environ["CAROL_PASSWORD"].encode(),
            )
        ]
    )
    for f in done.values():
        f.result(15)
    described = admin.describe_user_scram_credentials().result(15)
    out["users"] = sorted(described)
    out["carol_iterations"] = [
        i.iterations for i in described["carol"].scram_credential_infos
    ]
    bindings = [
        acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", AclOperation.WRITE, AclPermissionType.ALLOW),
        acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        acl(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        acl(ResourceType.TOPIC, "bob-", ResourcePatternType.PREFIXED, "User:bob", AclOperation.ALL, AclPermissionType.ALLOW),
        acl(ResourceType.TOPIC, "bob-locked", ResourcePatternType.LITERAL, "User:bob", AclOperation.WRITE, AclPermissionType.DENY),
        acl(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, "User:bob", AclOperation.READ, AclPermissionType.ALLOW),
        acl(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:carol", AclOperation.CREATE, AclPermissionType.ALLOW),
    ]
    for f in admin.create_acls(bindings, request_timeout=10).values():
        f.result(15)
    out["acls"] = len(admin.describe_acls(ANY_ACL, request_timeout=10).result(15))
    matching = AclBindingFilter(
        ResourceType.TOPIC, "bob-locked", ResourcePatternType.MATCH, None, None,
        AclOperation.ANY, AclPermissionType.ANY,
    )
    out["acls_matching_bob_locked"] = len(admin.describe_acls(matching).result(15))

    # Produce: allowed, denied (nothing written), denied by a DENY over an ALLOW.
    out["alice_produce"] = produce(bootstrap, "alice", "orders", b"from alice")
    out["bob_produce"] = produce(bootstrap, "bob", "orders", b"from bob")
    out["orders_high_watermark"] = high_watermark(bootstrap, "orders")
    out["bob_create_locked"] = create_topic(bootstrap, "bob", "bob-locked")
    out["bob_produce_locked"] = produce(bootstrap, "bob", "bob-locked", b"locked")
    out["bob_locked_high_watermark"] = high_watermark(bootstrap, "bob-locked")
    # Fetch and group join.
    out["alice_consume"] = consume(bootstrap, "alice", "orders", "alice-readers")
    out["alice_consume_other_group"] = consume(bootstrap, "alice", "orders", "someone-elses")
    out["bob_consume"] = consume(bootstrap, "bob", "orders", "bob-readers")
    # Create and delete.
    out["alice_create"] = create_topic(bootstrap, "alice", "alice-new")
    out["carol_create"] = create_topic(bootstrap, "carol", "carol-new")
    out["bob_delete_orders"] = delete_topic(bootstrap, "bob", "orders")
    out["bob_create_own"] = create_topic(bootstrap, "bob", "bob-scratch")
    out["bob_delete_own"] = delete_topic(bootstrap, "bob", "bob-scratch")
    # Metadata leaves out what the principal may not describe.
    topics = AdminClient(config(bootstrap, "alice")).list_topics(timeout=10).topics
    out["alice_sees"] = sorted(t for t in topics if not t.startswith("__"))
    # ACL administration needs ALTER on the cluster.
    try:
        # The client and the futures' dict are kept: they must outlive the wait.
        bob = AdminClient(config(bootstrap, "bob"))
        futures = bob.create_acls(
            [acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:bob", AclOperation.ALL, AclPermissionType.ALLOW)]
        )
        for f in futures.values():
            f.result(15)
        out["bob_grants_himself"] = "ok"
    except KafkaException as e:
        out["bob_grants_himself"] = code_of(e)
    # Delete bob's group ACL; the rest stay for the restart.
    bob_group = AclBindingFilter(
        ResourceType.GROUP, "*", ResourcePatternType.LITERAL, "User:bob", None,
        AclOperation.ANY, AclPermissionType.ANY,
    )
    futures = admin.delete_acls([bob_group])
    out["deleted"] = sum(len(f.result(15)) for f in futures.values())
    out["acls_left"] = len(admin.describe_acls(ANY_ACL).result(15))
    return out


def after_restart(bootstrap):
    admin = AdminClient(config(bootstrap, "admin"))
    return {
        "acls": len(admin.describe_acls(ANY_ACL, request_timeout=10).result(15)),
        "carol_create": create_topic(bootstrap, "carol", "carol-after-restart"),
        "alice_produce": produce(bootstrap, "alice", "orders", b"again"),
        "bob_produce": produce(bootstrap, "bob", "orders", b"again"),
        "orders_high_watermark": high_watermark(bootstrap, "orders"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["setup", "after-restart"])
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    result = setup(args.bootstrap) if args.phase == "setup" else after_restart(args.bootstrap)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
