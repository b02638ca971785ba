#!/usr/bin/env bash
# librdkafka's own integration suite against a fresh `herald serve` (docs/librdkafka-suite.md).
#
#   bash scripts/librdkafka-suite.sh               # the curated tests (CI): all must pass
#   bash scripts/librdkafka-suite.sh 0001 0081     # only these (any test, listed or not;
#                                                  # NNNN:noautocreate picks one scenario)
#   bash scripts/librdkafka-suite.sh --all         # every broker-backed test (discovery)
#   bash scripts/librdkafka-suite.sh --list        # the curated list and the exclusions
#   bash scripts/librdkafka-suite.sh --list-all    # every broker-backed test of this version
#   bash scripts/librdkafka-suite.sh --build       # only build (or check) the test-runner
#
# The source is the librdkafka that rdkafka-sys (pinned in Cargo.lock) vendors, tests/
# included, from cargo's registry. It is copied to target/librdkafka-suite/librdkafka-VERSION/
# and built there once (librdkafka, librdkafka++, tests/test-runner); later runs reuse it.
# Each test runs as its own test-runner process, under a time limit, a few at a time, against
# one broker per test scenario ("default": auto-create on, 4 partitions; "noautocreate":
# auto-create off). The list and every exclusion with its reason are the table in
# docs/librdkafka-suite.md, which this script reads.
#
# Knobs: HERALD_BIN (default target/debug/herald, built with `cargo build -p herald-cli`
#          when missing), HERALD_LIBRDKAFKA_JOBS (tests at once, default 3),
#        HERALD_LIBRDKAFKA_TEST_TIMEOUT (s per test, default 180),
#        HERALD_LIBRDKAFKA_KAFKA_VERSION (the broker version the tests assume, default 3.8.0),
#        HERALD_LIBRDKAFKA_TIMEOUT_MULTIPLIER (test.timeout.multiplier, default 2),
#        HERALD_LIBRDKAFKA_RETRIES (reruns of a failed test, default 0).
# Exit: 0 every selected test passed (or was skipped by librdkafka itself, except in the
# curated run, where a listed test must run), 1 a test failed or timed out, 2 usage or
# setup error (build, broker start).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
DOC="$ROOT/docs/librdkafka-suite.md"
CACHE="$ROOT/target/librdkafka-suite"
RUN="$CACHE/run"

JOBS="${HERALD_LIBRDKAFKA_JOBS:-3}"
TEST_TIMEOUT="${HERALD_LIBRDKAFKA_TEST_TIMEOUT:-180}"
KAFKA_VERSION="${HERALD_LIBRDKAFKA_KAFKA_VERSION:-3.8.0}"
MULTIPLIER="${HERALD_LIBRDKAFKA_TIMEOUT_MULTIPLIER:-2}"
RETRIES="${HERALD_LIBRDKAFKA_RETRIES:-0}"
HERALD_BIN="${HERALD_BIN:-$ROOT/target/debug/herald}"
# What librdkafka is built with: no GSSAPI (libsasl2) and no libcurl (OIDC), which the
# excluded SASL/OAUTHBEARER tests would need; zlib, zstd, lz4 and OpenSSL from Debian's
# -dev packages, and RapidJSON, which the tests that check statistics JSON need (.ci/run
# installs them). configure quietly drops what is missing, so REQUIRED is checked after it.
# A change here rebuilds the cache.
CONFIGURE_FLAGS=(--no-download --disable-gssapi --disable-curl)
REQUIRED=(ZLIB ZSTD LZ4_EXT SSL SOCKEM RAPIDJSON)

T0=$SECONDS
log() { printf '%s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 2
}
strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\x1b(B//g'; }

# ---------------------------------------------------------------- arguments

mode=curated # curated | all | pick | list | list-all | build
picked=()
for arg in "$@"; do
    case "$arg" in
    --all) mode=all ;;
    --list) mode=list ;;
    --list-all) mode=list-all ;;
    --build) mode=build ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    [0-9][0-9][0-9][0-9] | [0-9][0-9][0-9][0-9]:[a-z]*)
        mode=pick
        picked+=("$arg")
        ;;
    *) die "unknown argument '$arg' (see --help)" ;;
    esac
done

# ---------------------------------------------------------------- the table in the doc

# Rows of the table between the markers: "| 0001 | default | run | ... |".
# Prints "ID STATUS REASON" per row, ID being NNNN or NNNN:SCENARIO.
doc_rows() {
    [ -r "$DOC" ] || die "$DOC is missing: it holds the curated list"
    awk -F'|' '
        /<!-- librdkafka-suite-list/ { on = 1; next }
        /<!-- end librdkafka-suite-list/ { on = 0 }
        on && $2 ~ /^ *[0-9][0-9][0-9][0-9] *$/ {
            for (i = 2; i <= 6; i++) gsub(/^ +| +$/, "", $i)
            id = ($3 == "default") ? $2 : $2 ":" $3
            print id, $4, $6
        }' "$DOC"
}

# "ID SECONDS" per row: the duration last measured (0 when the column is not a number).
doc_rows_seconds() {
    awk -F'|' '
        /<!-- librdkafka-suite-list/ { on = 1; next }
        /<!-- end librdkafka-suite-list/ { on = 0 }
        on && $2 ~ /^ *[0-9][0-9][0-9][0-9] *$/ {
            for (i = 2; i <= 5; i++) gsub(/^ +| +$/, "", $i)
            print (($3 == "default") ? $2 : $2 ":" $3), ($5 ~ /^[0-9]+$/) ? $5 : 0
        }' "$DOC" 2>/dev/null || true
}

# ---------------------------------------------------------------- librdkafka source

# rdkafka-sys's version from Cargo.lock, e.g. 4.10.0+2.12.1 (librdkafka 2.12.1).
SYS_VERSION="$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$SYS_VERSION" ] || die "Cargo.lock pins no rdkafka-sys"
RDK_VERSION="${SYS_VERSION#*+}"
BUILD="$CACHE/librdkafka-$RDK_VERSION"
TESTS_DIR="$BUILD/tests"

registry_source() {
    local d
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$SYS_VERSION"/librdkafka; do
        [ -r "$d/tests/test.c" ] && {
            echo "$d"
            return 0
        }
    done
    return 1
}

# The tests' table in test.c, filtered to the ones that need a broker: not local (no broker
# or mock cluster), not manual, not a known issue (librdkafka skips those itself). Prints
# "NNNN SCENARIO NAME" per entry, in test.c's order.
broker_backed() {
    python3 - "$1" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
table = src[src.index("struct test tests[] = {"):]
table = table[:table.index("{NULL}};")]
for entry in re.split(r"\b_TEST\(", table)[1:]:
    name = re.match(r"\w+", entry).group(0)
    flags = set(re.findall(r"TEST_F_\w+", entry.split(",")[1]))
    if flags & {"TEST_F_LOCAL", "TEST_F_MANUAL", "TEST_F_KNOWN_ISSUE"}:
        continue
    m = re.search(r'\.scenario\s*=\s*"([^"]*)"', entry)
    # "default,ak23" runs in the default scenario
    print(name[:4], m.group(1).split(",")[0] if m else "default", name)
PY
}

build_stamp() { printf 'rdkafka-sys %s; configure %s; with %s\n' "$SYS_VERSION" "${CONFIGURE_FLAGS[*]}" "${REQUIRED[*]}"; }

# After configure: every REQUIRED feature is on (BUILT_WITH, or WITH_RAPIDJSON=y).
check_features() {
    local f missing=()
    for f in "${REQUIRED[@]}"; do
        grep -qE "^BUILT_WITH=.*[[:space:]]$f([[:space:]]|\$)|^WITH_$f=[[:space:]]*y" "$BUILD/Makefile.config" ||
            missing+=("$f")
    done
    [ "${#missing[@]}" -eq 0 ] ||
        die "librdkafka's configure found no ${missing[*]} (Debian: zlib1g-dev libzstd-dev liblz4-dev libssl-dev rapidjson-dev; bash .ci/run install)"
}

# Copy the registry's source into the cache and build it, unless the cache already holds
# this version built with these flags.
ensure_test_runner() {
    if [ -x "$TESTS_DIR/test-runner" ] && [ "$(cat "$BUILD/.herald-build" 2>/dev/null)" = "$(build_stamp)" ]; then
        log "librdkafka $RDK_VERSION: test-runner cached in ${BUILD#"$ROOT"/}"
        return 0
    fi
    local src t=$SECONDS blog="$CACHE/build-$RDK_VERSION.log"
    if ! src="$(registry_source)"; then
        log "librdkafka $RDK_VERSION: not in cargo's registry -> cargo fetch --locked"
        cargo fetch --locked >/dev/null
        src="$(registry_source)" || die "rdkafka-sys-$SYS_VERSION with librdkafka/tests/ is not in cargo's registry after cargo fetch"
    fi
    log "librdkafka $RDK_VERSION: building the test-runner once into ${BUILD#"$ROOT"/} (log: ${blog#"$ROOT"/})"
    rm -rf "$BUILD"
    mkdir -p "$CACHE"
    cp -a "$src" "$BUILD"
    : >"$blog"
    # Each stage's output goes to the log; on failure its tail is shown.
    stage() {
        local what="$1" s=$SECONDS
        shift
        log "  $what ..."
        if ! (cd "$BUILD" && "$@") >>"$blog" 2>&1; then
            tail -n 30 "$blog" | sed 's/^/    | /' >&2
            die "building librdkafka failed at: $what (full log: $blog)"
        fi
        log "  $what: $((SECONDS - s))s"
    }
    stage "configure ${CONFIGURE_FLAGS[*]}" ./configure "${CONFIGURE_FLAGS[@]}"
    check_features
    stage "make libs (librdkafka, librdkafka++)" make -j"$(nproc)" libs
    stage "make -C tests build (test-runner)" make -j"$(nproc)" -C tests build
    build_stamp >"$BUILD/.herald-build"
    log "librdkafka $RDK_VERSION: built in $((SECONDS - t))s"
}

# ---------------------------------------------------------------- selection

# Every id of the selected mode, one per line, longest-known tests first (the doc's seconds
# column) so that the slow ones do not start last.
select_ids() {
    case "$mode" in
    curated) doc_rows | awk '$2 == "run" { print $1 }' ;;
    all) broker_backed "$TESTS_DIR/test.c" | awk '{ print ($2 == "default") ? $1 : $1 ":" $2 }' ;;
    pick)
        local p
        for p in "${picked[@]}"; do
            if [[ $p == *:* ]]; then
                echo "$p"
            else # every scenario this number has
                broker_backed "$TESTS_DIR/test.c" | awk -v n="$p" '$1 == n { print ($2 == "default") ? $1 : $1 ":" $2 }' | grep . ||
                    echo "$p" # not broker-backed: run it anyway, librdkafka will say
            fi
        done
        ;;
    esac
}
order_by_duration() { # ids on stdin
    awk 'NR == FNR { s[$1] = $2; next } { print (($1 in s) ? s[$1] : 0), FNR, $1 }' \
        <(doc_rows_seconds) - | sort -k1,1nr -k2,2n | awk '{ print $3 }'
}

# Warn about broker-backed tests of this librdkafka that the doc's table does not classify
# (a new test after a version bump) and rows for tests this version does not have.
check_table() {
    local have want missing stale
    have="$(doc_rows | awk '{ print $1 }' | sort -u)"
    want="$(broker_backed "$TESTS_DIR/test.c" | awk '{ print ($2 == "default") ? $1 : $1 ":" $2 }' | sort -u)"
    missing="$(comm -13 <(echo "$have") <(echo "$want") | xargs)"
    stale="$(comm -23 <(echo "$have") <(echo "$want") | xargs)"
    [ -z "$missing" ] || log "WARNING: broker-backed tests of librdkafka $RDK_VERSION that docs/librdkafka-suite.md does not classify (run them with --all or by number, then add rows): $missing"
    [ -z "$stale" ] || log "WARNING: docs/librdkafka-suite.md has rows that librdkafka $RDK_VERSION has no broker-backed test for: $stale"
}

# ---------------------------------------------------------------- brokers

declare -A BROKER_PID BROKER_ADDR
RUNNING=() # pids of test jobs still running

cleanup() {
    local pid s
    # A job's child is `timeout`, in a process group of its own: end it (it ends its
    # test-runner), then the job.
    for pid in "${RUNNING[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    for s in "${!BROKER_PID[@]}"; do stop_broker "$s"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start `herald serve` for a scenario on port 0 and read its address from the ready line.
start_broker() {
    local s="$1" dir="$RUN/herald-$1" auto=true i
    [ "$s" = noautocreate ] && auto=false
    mkdir -p "$dir/data"
    HERALD_DEFAULT_PARTITIONS=4 HERALD_AUTO_CREATE_TOPICS=$auto HERALD_LOG_LEVEL="${HERALD_LOG_LEVEL:-info}" \
        "$HERALD_BIN" serve --data-dir "$dir/data" --kafka-listen 127.0.0.1:0 \
        --http-listen 127.0.0.1:0 --registry-listen 127.0.0.1:0 \
        </dev/null >"$dir/stdout" 2>"$dir/herald.log" &
    BROKER_PID[$s]=$!
    for ((i = 0; i < 300; i++)); do
        BROKER_ADDR[$s]="$(sed -n 's/^herald ready kafka=\([^ ]*\) .*/\1/p' "$dir/stdout")"
        [ -n "${BROKER_ADDR[$s]}" ] && break
        kill -0 "${BROKER_PID[$s]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "${BROKER_ADDR[$s]}" ]; then
        tail -n 20 "$dir/herald.log" | sed 's/^/    | /' >&2
        die "herald serve ($s scenario) did not print its ready line (log: $dir/herald.log)"
    fi
    # The test-runner's configuration: the broker, and how much to stretch its timeouts.
    printf 'bootstrap.servers=%s\ntest.timeout.multiplier=%s\n' "${BROKER_ADDR[$s]}" "$MULTIPLIER" >"$RUN/test-$s.conf"
    log "herald serve ($s scenario: auto-create $auto, 4 partitions) on ${BROKER_ADDR[$s]}, pid ${BROKER_PID[$s]}, log ${dir#"$ROOT"/}/herald.log"
}

stop_broker() {
    local s="$1" pid="${BROKER_PID[$1]:-}" i
    [ -n "$pid" ] || return 0
    unset "BROKER_PID[$s]"
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- one test

# Run test ID (NNNN or NNNN:SCENARIO) as its own test-runner; write RUN/ID.result as
# "STATUS SECONDS" with STATUS one of PASS FAIL TIMEOUT SKIP.
run_one() {
    local id="$1" num="${1%%:*}" s=default rc=0 t=$SECONDS status out
    [[ $id == *:* ]] && s="${id#*:}"
    out="$RUN/${id/:/-}.log"
    # -L: no local tests (those of the same number that need no broker); -p1: one at a
    # time inside this process; CI unset: the runner would otherwise raise its own timeouts.
    (cd "$TESTS_DIR" && exec env -u CI TESTS="$num" TEST_KAFKA_VERSION="$KAFKA_VERSION" \
        RDKAFKA_TEST_CONF="$RUN/test-$s.conf" BROKERS="${BROKER_ADDR[$s]}" \
        LD_LIBRARY_PATH="../src:../src-cpp" \
        timeout --kill-after=10 "$TEST_TIMEOUT" ./test-runner -L -p1 -s "$s") >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status=TIMEOUT
    elif [ "$rc" -ne 0 ]; then
        status=FAIL
    # (grep without -q: reading all of it, so that sed gets no SIGPIPE under pipefail)
    elif strip_ansi <"$out" | grep -E "^\| +${num}_[A-Za-z0-9_]+ +\| +PASSED" >/dev/null; then
        status=PASS
    else
        status=SKIP # librdkafka skipped every entry (broker version, ...)
    fi
    echo "$status $((SECONDS - t))" >"$RUN/${id/:/-}.result"
}

# What to show of a failed test: librdkafka's failure headers with the message after each.
failure_excerpt() {
    strip_ansi <"$1" | awk '/^### Test / { print; if (getline > 0) print; next } /timed out/' | tail -n 16
}

# ---------------------------------------------------------------- main

case "$mode" in
list)
    log "curated (run in CI):"
    doc_rows | awk '$2 == "run" { id = $1; $1 = ""; $2 = ""; printf "  %-18s %s\n", id, substr($0, 3) }'
    log "excluded:"
    doc_rows | awk '$2 != "run" { id = $1; $1 = ""; $2 = ""; printf "  %-18s %s\n", id, substr($0, 3) }'
    exit 0
    ;;
esac

log "librdkafka suite: rdkafka-sys $SYS_VERSION (librdkafka $RDK_VERSION), mode $mode"
ensure_test_runner
[ "$mode" = build ] && exit 0
if [ "$mode" = list-all ]; then
    broker_backed "$TESTS_DIR/test.c"
    exit 0
fi
check_table

mapfile -t IDS < <(select_ids | awk '!seen[$0]++' | order_by_duration)
[ "${#IDS[@]}" -gt 0 ] || die "no test selected"

if [ ! -x "$HERALD_BIN" ]; then
    log "$HERALD_BIN is missing -> cargo build -p herald-cli"
    cargo build -p herald-cli
fi
if [ -n "$(find crates -name '*.rs' -newer "$HERALD_BIN" -print -quit 2>/dev/null)" ]; then
    log "WARNING: $HERALD_BIN is older than crates/ sources (cargo build -p herald-cli to test them)"
fi

rm -rf "$RUN"
mkdir -p "$RUN"
for s in $(printf '%s\n' "${IDS[@]}" | awk -F: '{ print (NF > 1) ? $2 : "default" }' | sort -u); do
    start_broker "$s"
done
log "running ${#IDS[@]} test(s), $JOBS at a time, each limited to ${TEST_TIMEOUT}s; broker version $KAFKA_VERSION, timeout multiplier $MULTIPLIER; logs in ${RUN#"$ROOT"/}/"

declare -A TRIES JOB_ID
queue=("${IDS[@]}")
done_cnt=0
PASSED=() FAILED=() TIMEDOUT=() SKIPPED=() FLAKY=()
declare -A SECS
while [ "${#queue[@]}" -gt 0 ] || [ "${#RUNNING[@]}" -gt 0 ]; do
    # Start tests while there is room.
    while [ "${#queue[@]}" -gt 0 ] && [ "${#RUNNING[@]}" -lt "$JOBS" ]; do
        id="${queue[0]}"
        queue=("${queue[@]:1}")
        TRIES[$id]=$((${TRIES[$id]:-0} + 1))
        rm -f "$RUN/${id/:/-}.result"
        # stderr aside: bash reports a test-runner that aborted ("Aborted ...") there.
        run_one "$id" 2>>"$RUN/jobs.err" &
        RUNNING+=($!)
        JOB_ID[$!]="$id"
    done
    # Wait for one to end, then collect it.
    finished=""
    wait -n -p finished "${RUNNING[@]}" || true
    [ -n "$finished" ] || continue
    rest=()
    for pid in "${RUNNING[@]}"; do [ "$pid" = "$finished" ] || rest+=("$pid"); done
    RUNNING=("${rest[@]+"${rest[@]}"}")
    id="${JOB_ID[$finished]}"
    read -r status secs <"$RUN/${id/:/-}.result" || status=FAIL secs="?"
    if [ "$status" != PASS ] && [ "$status" != SKIP ] && [ "${TRIES[$id]}" -le "$RETRIES" ]; then
        log "       $status $id after ${secs}s: running it again (try $((TRIES[$id] + 1)))"
        cp "$RUN/${id/:/-}.log" "$RUN/${id/:/-}.try${TRIES[$id]}.log"
        queue+=("$id")
        continue
    fi
    done_cnt=$((done_cnt + 1))
    SECS[$id]=$secs
    case "$status" in
    PASS)
        PASSED+=("$id")
        [ "${TRIES[$id]}" -gt 1 ] && FLAKY+=("$id")
        ;;
    SKIP) SKIPPED+=("$id") ;;
    TIMEOUT) TIMEDOUT+=("$id") ;;
    *) FAILED+=("$id") ;;
    esac
    printf '[%3d/%d] %-7s %-18s %4ss  (%ss elapsed)\n' "$done_cnt" "${#IDS[@]}" "$status" "$id" "$secs" "$((SECONDS - T0))"
    for s in "${!BROKER_PID[@]}"; do
        if ! kill -0 "${BROKER_PID[$s]}" 2>/dev/null; then
            log "ERROR: herald serve ($s) exited during the run; last lines of its log:"
            tail -n 20 "$RUN/herald-$s/herald.log" | sed 's/^/    | /'
            die "the broker died"
        fi
    done
done
for s in "${!BROKER_PID[@]}"; do stop_broker "$s"; done

# ---------------------------------------------------------------- summary

log ""
log "==================== librdkafka $RDK_VERSION suite: summary ===================="
for id in "${IDS[@]}"; do
    st=PASS
    for f in "${FAILED[@]+"${FAILED[@]}"}"; do [ "$f" = "$id" ] && st=FAIL; done
    for f in "${TIMEDOUT[@]+"${TIMEDOUT[@]}"}"; do [ "$f" = "$id" ] && st=TIMEOUT; done
    for f in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do [ "$f" = "$id" ] && st=SKIP; done
    for f in "${FLAKY[@]+"${FLAKY[@]}"}"; do [ "$f" = "$id" ] && st="PASS (on try ${TRIES[$id]})"; done
    printf '  %-18s %-16s %5ss\n' "$id" "$st" "${SECS[$id]}"
done
for id in "${FAILED[@]+"${FAILED[@]}"}" "${TIMEDOUT[@]+"${TIMEDOUT[@]}"}"; do
    log ""
    log "--- $id: ${RUN#"$ROOT"/}/${id/:/-}.log (broker: ${RUN#"$ROOT"/}/herald-*/herald.log)"
    failure_excerpt "$RUN/${id/:/-}.log" | sed 's/^/    | /'
done
bad=$((${#FAILED[@]} + ${#TIMEDOUT[@]}))
# A listed test that librdkafka skipped entirely tests nothing (a build feature gone
# missing, say): in the curated run that is a failure too.
if [ "$mode" = curated ] && [ "${#SKIPPED[@]}" -gt 0 ]; then
    log ""
    log "listed tests that librdkafka skipped entirely (each log says why): ${SKIPPED[*]}"
    bad=$((bad + ${#SKIPPED[@]}))
fi
log ""
log "totals: ${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#TIMEDOUT[@]} timed out (limit ${TEST_TIMEOUT}s), ${#SKIPPED[@]} skipped by librdkafka, ${#FLAKY[@]} passed only on a retry; wall time $((SECONDS - T0))s"
[ "${#FLAKY[@]}" -eq 0 ] || log "flaky: ${FLAKY[*]}"
[ "$bad" -eq 0 ] || log "failed: ${FAILED[*]+"${FAILED[*]}"} ${TIMEDOUT[*]+"${TIMEDOUT[*]}"}"
log ""
# The plain closing line (timeouts count as failures).
log "librdkafka: ${#PASSED[@]} passed, $bad failed, ${#SKIPPED[@]} skipped"
[ "$bad" -eq 0 ]
