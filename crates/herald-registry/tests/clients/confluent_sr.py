"""confluent-kafka's schema registry client and serializers against Herald.

Usage: confluent_sr.py REGISTRY_URL BOOTSTRAP [--no-rust]

With --no-rust, step 3 is skipped (for runs against a `herald serve` binary, where no
Rust test wrote records first).

1. SchemaRegistryClient: register, fetch, look up, list, versions, compatibility
   levels and tests, soft deletes, and the error codes Herald answers with.
2. AvroSerializer, JSONSerializer and ProtobufSerializer: a Producer writes records
   to the topics avro-py, json-py and proto-py (broker-side validation on), and a
   Consumer reads them back through the matching deserializers.
3. The records a Rust test wrote with Herald's own serializers to rust-avro, rust-json
   and rust-proto are read back with confluent-kafka's deserializers.
4. Records without a registered schema id are refused by the broker with INVALID_RECORD.

Prints one JSON object on the last line; exits 1 naming the first mismatch, 77 when the
libraries are missing.
"""

import json
import sys
import time

SKIP = 77


def die(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


try:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError as e:
    print(f"SKIP: {e} ({sys.executable}; run bash .ci/run install)", file=sys.stderr)
    sys.exit(SKIP)

registry_url, bootstrap = sys.argv[1], sys.argv[2]
with_rust = "--no-rust" not in sys.argv[3:]
client = SchemaRegistryClient({"url": registry_url})

ORDER_AVRO = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "cents", "type": "long"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
})
ORDER_JSON = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order", "type": "object",
    "properties": {"id": {"type": "string"}, "cents": {"type": "integer"}},
    "required": ["id", "cents"],
})


def expect(cond, msg):
    if not cond:
        die(msg)


# ---------------------------------------------------------------- 1. the client API

result = {}
sid = client.register_schema("py-client", Schema(ORDER_AVRO, "AVRO"))
expect(client.register_schema("py-client", Schema(ORDER_AVRO, "AVRO")) == sid, "re-registration gave another id")
fetched = client.get_schema(sid)
expect(json.loads(fetched.schema_str) == json.loads(ORDER_AVRO), f"get_schema: {fetched.schema_str}")
latest = client.get_latest_version("py-client")
expect((latest.schema_id, latest.version, latest.subject) == (sid, 1, "py-client"), f"latest: {latest}")
found = client.lookup_schema("py-client", Schema(ORDER_AVRO, "AVRO"))
expect(found.version == 1 and found.schema_id == sid, f"lookup: {found}")
expect("py-client" in client.get_subjects(), "get_subjects")
expect(client.get_versions("py-client") == [1], "get_versions")
expect(client.get_version("py-client", 1).schema_id == sid, "get_version")
expect("AVRO" in client.get_schema_types(), "schema types")
client.set_compatibility("py-client", "FULL")
expect(client.get_compatibility("py-client") == "FULL", "get_compatibility")
evolved = json.loads(ORDER_AVRO)
evolved["fields"].append({"name": "note", "type": "string"})
expect(client.test_compatibility("py-client", Schema(json.dumps(evolved), "AVRO")) is False,
       "a field without default passed FULL")
evolved["fields"][-1]["default"] = ""
expect(client.test_compatibility("py-client", Schema(json.dumps(evolved), "AVRO")) is True,
       "a field with default failed FULL")
try:
    client.register_schema("py-client", Schema(json.dumps({**evolved, "fields": evolved["fields"][:-1] + [{"name": "x", "type": "int"}]}), "AVRO"))
    die("an incompatible schema registered")
except SchemaRegistryError as e:
    expect(e.http_status_code == 409 and e.error_code == 409, f"incompatible: {e}")
try:
    client.get_latest_version("no-such-subject")
    die("an unknown subject was found")
except SchemaRegistryError as e:
    expect(e.error_code == 40401, f"unknown subject: {e}")
try:
    client.register_schema("py-bad", Schema("{\"type\": \"nope\"}", "AVRO"))
    die("an invalid schema registered")
except SchemaRegistryError as e:
    expect(e.error_code == 42201, f"invalid schema: {e}")
expect(client.delete_version("py-client", 1) == 1, "delete_version")
expect(client.get_subjects() .count("py-client") == 0, "soft-deleted subject still listed")
result["client_api"] = "ok"

# ---------------------------------------------------------------- 2. serializers

proto_file = descriptor_pb2.FileDescriptorProto()
proto_file.name = "shop/order.proto"
proto_file.package = "shop"
proto_file.syntax = "proto3"
msg = proto_file.message_type.add()
msg.name = "Order"
for number, (name, kind) in enumerate([("id", descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
                                        ("cents", descriptor_pb2.FieldDescriptorProto.TYPE_INT64)], 1):
    f = msg.field.add()
    f.name, f.number, f.type = name, number, kind
    f.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
pool = descriptor_pool.DescriptorPool()
pool.Add(proto_file)
OrderProto = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))

orders = [{"id": f"o-{i}", "cents": 100 * i + 7, "tags": ["a", "ü"][: i % 3]} for i in range(5)]

avro_ser = AvroSerializer(client, ORDER_AVRO)
avro_de = AvroDeserializer(client)
json_ser = JSONSerializer(ORDER_JSON, client)
json_de = JSONDeserializer(ORDER_JSON)
proto_ser = ProtobufSerializer(OrderProto, client, {"use.deprecated.format": False})
proto_de = ProtobufDeserializer(OrderProto, {"use.deprecated.format": False})

kinds = {
    "avro-py": (lambda o, c: avro_ser(o, c), lambda b, c: avro_de(b, c), lambda o: o),
    "json-py": (lambda o, c: json_ser({"id": o["id"], "cents": o["cents"]}, c), lambda b, c: json_de(b, c),
                lambda o: {"id": o["id"], "cents": o["cents"]}),
    "proto-py": (lambda o, c: proto_ser(OrderProto(id=o["id"], cents=o["cents"]), c),
                 lambda b, c: (lambda m: {"id": m.id, "cents": m.cents})(proto_de(b, c)),
                 lambda o: {"id": o["id"], "cents": o["cents"]}),
}

errors = []


def report(err, _msg):
    if err is not None:
        errors.append(err)


producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
for topic, (ser, _, _) in kinds.items():
    ctx = SerializationContext(topic, MessageField.VALUE)
    for o in orders:
        producer.produce(topic, value=ser(o, ctx), key=o["id"], on_delivery=report)
if producer.flush(30) != 0 or errors:
    die(f"produce failed: {errors}")


def consume(topic, count):
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"py-{topic}-{time.time()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            die(f"{topic}: {m.error()}")
        got.append(m.value())
    consumer.close()
    if len(got) != count:
        die(f"{topic}: read {len(got)} of {count} records")
    return got


for topic, (_, de, shape) in kinds.items():
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [de(v, ctx) for v in consume(topic, len(orders))]
    expect(values == [shape(o) for o in orders], f"{topic}: read back {values}")
result["round_trip"] = {t: len(orders) for t in kinds}

# ---------------------------------------------------------------- 3. Herald's serializers

rust = {}
for topic, (_, de, _) in (kinds.items() if with_rust else []):
    rtopic = "rust-" + topic[: -len("-py")]
    ctx = SerializationContext(rtopic, MessageField.VALUE)
    rust[rtopic] = [de(v, ctx) for v in consume(rtopic, 3)]
result["rust"] = rust

# ---------------------------------------------------------------- 4. broker-side validation

refused = []


def refused_report(err, _msg):
    refused.append(None if err is None else err.code())


raw = Producer({"bootstrap.servers": bootstrap, "retries": 0, "linger.ms": 0})
unknown_id = bytes([0, 0, 0, 0x7f, 0x7f]) + b"payload"
for value in [b"no schema at all", unknown_id]:
    raw.produce("avro-py", value=value, on_delivery=refused_report)
    raw.flush(30)
expect(refused == [KafkaError.INVALID_RECORD] * 2, f"unframed records: {refused}")
result["refused"] = len(refused)

print(json.dumps(result, sort_keys=True), flush=True)
