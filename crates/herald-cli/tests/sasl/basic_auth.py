"""HTTP Basic authentication against `herald serve --http-auth basic`, as clients do it.

  basic_auth.py --http URL --registry URL --user NAME

The password comes from SASL_PASSWORD. Prints {"health": status, "anonymous": status,
"wrong": status, "authenticated": status, "registry_anonymous": "...",
"registry_id": id}: /health without credentials, /api/v1/topics without, with a wrong
password and with the right one; confluent-kafka's SchemaRegistryClient without
credentials (its error) and with basic.auth.user.info (the id it registered).
"""

import argparse
import base64
import json
import os
import urllib.error
import urllib.request


def status(url, user=None, password=None):
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--user", required=True)
    args = p.parse_args()
    password = os.environ["SASL_PASSWORD"]
    out = {
        "health": status(f"{args.http}/health"),
        "anonymous": status(f"{args.http}/api/v1/topics"),
        "wrong": status(f"{args.http}/api/v1/topics", args.user, "wrong"),
        "authenticated": status(f"{args.http}/api/v1/topics", args.user, password),
    }
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    schema = Schema('{"type": "string"}', "AVRO")
    try:
        SchemaRegistryClient({"url": args.registry}).register_schema("anon-value", schema)
        out["registry_anonymous"] = "registered"
    except Exception as e:  # the client's error is the result
        out["registry_anonymous"] = str(e)
    client = SchemaRegistryClient({"url": args.registry, "basic.auth.user.info": f"{args.user}:{password}"})
    out["registry_id"] = client.register_schema("orders-value", schema)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
