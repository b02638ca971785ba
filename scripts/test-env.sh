# shellcheck shell=bash
# Herald's test environment: the services and tools the integration tests talk to.
#
#   source scripts/test-env.sh            # from the repo root, or from anywhere
#   cargo nextest run --workspace
#
# .ci/run sources this same file, so a developer's shell and CI never drift.
# Every URL can be overridden by exporting it before sourcing this file.
# Tests that need a service skip (with a printed reason) when its HERALD_TEST_*
# variable is unset; with HERALD_REQUIRE_SERVICES=1 they fail instead (the rule is
# crates/herald-test-support's, shared by every test).
#
# This file is sourced: it must never `exit`, `set -e` or leave helpers behind.

__herald_env() {
    local src root
    src="${BASH_SOURCE[0]:-$0}"
    root="$(cd "$(dirname "$src")/.." && pwd)" || return 1

    export HERALD_REQUIRE_SERVICES="${HERALD_REQUIRE_SERVICES:-1}"
    export HERALD_TEST_POSTGRES_URL="${HERALD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
    export HERALD_TEST_REDIS_URL="${HERALD_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    export HERALD_TEST_AMQP_URL="${HERALD_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    export HERALD_TEST_NATS_URL="${HERALD_TEST_NATS_URL:-nats://127.0.0.1:4222}"

    # Kafka client interop: a Python with confluent-kafka, kafka-python and aiokafka
    # (the .venv that .ci/run builds), and kcat. Exported only when present, so a
    # missing tool shows up as a skip/fail naming the variable, not as a bad path.
    if [ -z "${HERALD_TEST_PYTHON:-}" ]; then
        if [ -x "$root/.venv/bin/python" ]; then
            export HERALD_TEST_PYTHON="$root/.venv/bin/python"
        else
            echo "test-env: $root/.venv missing; run 'bash .ci/run install' to create it (HERALD_TEST_PYTHON left unset)" >&2
        fi
    fi
    if [ -z "${HERALD_TEST_KCAT:-}" ]; then
        if command -v kcat >/dev/null 2>&1; then
            HERALD_TEST_KCAT="$(command -v kcat)"
            export HERALD_TEST_KCAT
        else
            echo "test-env: kcat not installed ('apt-get install kcat'); HERALD_TEST_KCAT left unset" >&2
        fi
    fi
}
__herald_env
unset -f __herald_env
