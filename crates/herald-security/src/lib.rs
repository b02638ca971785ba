//! Security shared by Herald's servers. The HTTP API of `herald serve` and the schema
//! registry both take [`BrowserGuard`]: on the loopback default, where nothing asks for
//! credentials, it keeps a web page the user happens to visit from reaching them (DNS
//! rebinding, cross-site forms and `fetch`). [`tls`] gives the Kafka listener, the HTTP
//! API and the registry TLS from PEM files, re-read without dropping connections.
//! docs/security.md says what each part stops.
//!
//! The crate depends on no other Herald crate, so the broker and the registry, which
//! must not depend on each other, can both use it.

pub mod acl;
pub mod basic;
mod browser;
pub mod caller;
pub mod scram;
pub mod tls;
pub mod users;

pub use acl::{
    ANONYMOUS, AclBinding, AclError, AclFilter, Authorizer, CLUSTER_NAME, Operation, PatternType,
    Permission, ResourceType,
};
pub use basic::{BasicAuth, Principal};
pub use browser::{BrowserGuard, HostAllowlist, Rejection, RejectionResponder};
pub use caller::{Caller, path_segments};
pub use scram::{Mechanism, ScramHash};
pub use tls::{TlsError, TlsFiles, TlsListener, TlsServer};
pub use users::{UserError, UserStore};
