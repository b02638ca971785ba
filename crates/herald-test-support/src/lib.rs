//! Helpers shared by Herald's tests, so that each rule lives once: what a test does when a
//! service or tool it needs is missing (skip with a printed reason, or fail under
//! `HERALD_REQUIRE_SERVICES=1`), a server process started on port 0 and read from its ready
//! line (`herald serve` among them), subprocesses bounded in time, and names no other test
//! uses. A dev-dependency only, depending on no herald crate: a test hands in its binary's
//! path (`env!("CARGO_BIN_EXE_herald")`).
//!
//! A test that needs a service reads it with let-else, so the skip is one line:
//!
//! ```no_run
//! # fn connect(_: &str) {}
//! #[test]
//! fn against_postgres() {
//!     let Some(url) = herald_test_support::postgres_url() else { return };
//!     connect(&url);
//! }
//! ```
//!
//! Unset, `postgres_url` prints `skipping: needs PostgreSQL, and HERALD_TEST_POSTGRES_URL is
//! unset (…)` and the test passes; under `HERALD_REQUIRE_SERVICES=1` (CI, and
//! `scripts/test-env.sh`) it panics with that reason instead. [`Need`] is the rule as a pure
//! function of the environment, for code that wants the decision without acting on it.

mod certs;
mod names;
mod need;
mod process;
mod serve;

pub use certs::{CertFiles, TestCa};
pub use names::unique_name;
pub use need::{
    Need, REQUIRE_SERVICES, check_service, check_tool, is_required, kcat, postgres_url, python,
    redis_url, required, service, skip, skip_or_fail, tool,
};
pub use process::{READY_TIMEOUT, ReadyProcess, STOP_TIMEOUT, output_within, ready_field};
pub use serve::{
    HeraldServe, PORT_0, READY_PREFIX, add_user, basic_auth_serve, herald_command, sasl_ssl_serve,
};
