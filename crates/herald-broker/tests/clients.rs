//! Unmodified Kafka clients against Herald: kcat, confluent-kafka (librdkafka),
//! kafka-python and aiokafka, each run as a subprocess with a time limit against a
//! broker this test starts in-process on 127.0.0.1:0 with a temporary directory.
//!
//! The clients come from `HERALD_TEST_PYTHON` (a Python with the three libraries) and
//! `HERALD_TEST_KCAT`; `source scripts/test-env.sh` sets both. When one is unset a test
//! prints why and passes, unless `HERALD_REQUIRE_SERVICES=1` (CI), where it fails. The
//! Python side is in `tests/clients/*.py`: each script exits non-zero naming the first
//! mismatch it sees, and this side checks what the broker stored.

// Broker, subprocesses with time limits, record specs.
#[path = "clients/support.rs"]
mod support;
// Keys, values, headers, timestamps, offsets: each client, and across clients.
#[path = "clients/roundtrip.rs"]
mod roundtrip;
// Every compression codec with each Python client.
#[path = "clients/compression.rs"]
mod compression;
// Consumer groups: split, take-over on close and on SIGKILL, offsets across a restart.
#[path = "clients/groups.rs"]
mod groups;
// The idempotent producer, with librdkafka and over the raw protocol.
#[path = "clients/idempotence.rs"]
mod idempotence;
// Topic configs through confluent-kafka's AdminClient (legacy AlterConfigs).
#[path = "clients/admin.rs"]
mod admin;
// Truncated, stalled and corrupted requests over the socket.
#[path = "clients/bad_input.rs"]
mod bad_input;

// The raw Kafka test client the broker's own tests use.
#[path = "common/mod.rs"]
mod common;
