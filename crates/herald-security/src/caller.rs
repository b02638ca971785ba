//! The caller of an HTTP request, for the servers' authorization layers: the principal
//! that authentication put in the request's extensions ([`Principal`], from
//! [`BasicAuth`](crate::BasicAuth)), or `User:ANONYMOUS`, and the ACLs that decide for
//! it. Each server maps its routes onto Kafka's operations itself.

use axum::http::Extensions;

use crate::{ANONYMOUS, Authorizer, Operation, Principal, ResourceType};

/// Who is asking and what decides.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `User:NAME`, or `User:ANONYMOUS`.
    pub principal: String,
    authorizer: Option<Authorizer>,
}

impl Caller {
    /// The caller of a request with these extensions; `authorizer` `None` allows all.
    pub fn of(extensions: &Extensions, authorizer: Option<Authorizer>) -> Self {
        let principal = extensions
            .get::<Principal>()
            .map_or_else(|| ANONYMOUS.to_owned(), |p| p.0.clone());
        Self {
            principal,
            authorizer,
        }
    }

    /// Whether requests are checked at all.
    pub fn is_checked(&self) -> bool {
        self.authorizer.is_some()
    }

    /// Whether the caller may do `operation` to the resource (always, without ACLs).
    /// HTTP callers have no host in the ACL sense: only `*` host bindings apply.
    pub fn may(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        Authorizer::allows(
            self.authorizer.as_ref(),
            &self.principal,
            None,
            operation,
            resource_type,
            name,
        )
    }
}

/// A request path's segments, percent-decoded (`/api/v1/groups/a%20b` has `a b`).
pub fn path_segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}
