//! Arbitrary bytes through the broker's request decoding: framing, request header, the
//! body of every API it dispatches, and Produce's record batch checks. It must never
//! panic, hang or abort. It decodes exactly as the broker does; `HERALD_FUZZ_GUARDED=1`
//! adds the old guard against huge wire array counts (see `herald_broker::fuzzing`).
#![no_main]

use std::sync::LazyLock;

use herald_broker::fuzzing::{decode_request, decode_request_unguarded};
use libfuzzer_sys::fuzz_target;

static GUARDED: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("HERALD_FUZZ_GUARDED").is_some_and(|v| v == "1"));

fuzz_target!(|data: &[u8]| {
    if *GUARDED {
        decode_request(data);
    } else {
        decode_request_unguarded(data);
    }
});
