//! Arbitrary bytes through the broker's request decoding: framing, request header, the
//! body of every API it dispatches, and Produce's record batch checks. It must never
//! panic, hang or abort. `HERALD_FUZZ_UNGUARDED=1` drops the guard against the known
//! kafka-protocol over-allocation (see `herald_broker::fuzzing`), to reproduce it.
#![no_main]

use std::sync::LazyLock;

use herald_broker::fuzzing::{decode_request, decode_request_unguarded};
use libfuzzer_sys::fuzz_target;

static UNGUARDED: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("HERALD_FUZZ_UNGUARDED").is_some_and(|v| v == "1"));

fuzz_target!(|data: &[u8]| {
    if *UNGUARDED {
        decode_request_unguarded(data);
    } else {
        decode_request(data);
    }
});
