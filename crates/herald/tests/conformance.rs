//! The transport conformance suite on the in-process transports. The specification
//! lives in `conformance/suite.rs`, shared with `kafka_transport.rs`: every transport
//! passes the same tests.

mod common;
// The specification, generic over a `Harness`, with the `conformance!` macro.
#[macro_use]
#[path = "conformance/suite.rs"]
mod suite;

use common::*;

conformance!(memory, MemoryHarness::new());
conformance!(embedded, EmbeddedHarness::new());
