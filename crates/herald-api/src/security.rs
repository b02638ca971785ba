//! `/api/v1/acls` and `/api/v1/users`: Kafka's ACLs and the SCRAM users, as `herald acls`
//! and `herald users` manage them on a running broker. Names are Kafka's, in capitals:
//! `TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`; `LITERAL`, `PREFIXED`; `READ`,
//! `WRITE`, `CREATE`, `DELETE`, `ALTER`, `DESCRIBE`, `CLUSTER_ACTION`,
//! `DESCRIBE_CONFIGS`, `ALTER_CONFIGS`, `IDEMPOTENT_WRITE`, `ALL`; `ALLOW`, `DENY`.

use serde::{Deserialize, Serialize};

/// One ACL (Kafka's `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// `TOPIC`, `GROUP`, `CLUSTER` or `TRANSACTIONAL_ID`.
    pub resource_type: String,
    /// The resource's name (`*` for all; the cluster is `kafka-cluster`).
    pub resource_name: String,
    /// `LITERAL` or `PREFIXED`.
    pub pattern_type: String,
    /// `User:NAME`, or `User:*` for everyone.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: String,
    /// `ALLOW` or `DENY`.
    pub permission: String,
}

/// `GET /api/v1/acls` and the body of `POST /api/v1/acls`; `DELETE` answers the ones
/// it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclList {
    /// The ACLs.
    pub acls: Vec<Acl>,
}

/// The filter of `GET` and `DELETE /api/v1/acls`, as query parameters; each absent one
/// matches anything. `pattern_type=MATCH` with a name selects the ACLs that apply to
/// that resource (literal, `*` and prefixes), as Kafka's MATCH does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclQuery {
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource name.
    pub resource_name: Option<String>,
    /// `LITERAL`, `PREFIXED` or `MATCH`.
    pub pattern_type: Option<String>,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation.
    pub operation: Option<String>,
    /// Permission.
    pub permission: Option<String>,
}

/// One SCRAM credential of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMechanism {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

/// A user and its credentials (never a salt, key or password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name; its principal is `User:<name>`.
    pub name: String,
    /// Its SCRAM credentials.
    pub mechanisms: Vec<UserMechanism>,
}

/// `GET /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// Every user, by name.
    pub users: Vec<UserInfo>,
}

/// The body of `PUT /api/v1/users/{name}`: sets the password (creating the user).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The password; kept only as salted SCRAM credentials.
    pub password: String,
    /// Mechanisms to make credentials for; absent: both.
    #[serde(default)]
    pub mechanisms: Option<Vec<String>>,
    /// PBKDF2 iterations; absent: the default (8192).
    #[serde(default)]
    pub iterations: Option<u32>,
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("mechanisms", &self.mechanisms)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}
