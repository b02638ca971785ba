//! Kafka's ACL model and its decisions (KIP-11, KIP-290 prefixed patterns), kept in
//! `<data-dir>/security/acls.json`: who (`User:NAME`, or `User:*`) may do what (an
//! operation) to which resources (a topic, group, the cluster, a transactional id; by
//! literal name, `*`, or prefix), from which host, allowed or denied.
//!
//! The decision is Kafka's `AclAuthorizer`/`StandardAuthorizer` rule: super users may do
//! anything; otherwise a matching DENY wins over any ALLOW; an ALLOW of READ, WRITE,
//! DELETE or ALTER also allows DESCRIBE, and of ALTER_CONFIGS also DESCRIBE_CONFIGS; ALL
//! stands for every operation; with no matching ALLOW the answer is no.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};

/// A resource type, with Kafka's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    /// A topic (2).
    Topic,
    /// A consumer group (3).
    Group,
    /// The cluster (4); its one resource is named `kafka-cluster`.
    Cluster,
    /// A transactional id (5).
    TransactionalId,
}

impl ResourceType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    /// The type of a Kafka code (ANY, UNKNOWN and the token types are not resources here).
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            _ => return None,
        })
    }
}

/// How a binding's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    /// The exact name, or `*` for every resource of the type (3).
    Literal,
    /// Every name that starts with it (4).
    Prefixed,
}

impl PatternType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// An operation, with Kafka's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// Every operation (2).
    All,
    /// 3.
    Read,
    /// 4.
    Write,
    /// 5.
    Create,
    /// 6.
    Delete,
    /// 7.
    Alter,
    /// 8.
    Describe,
    /// 9.
    ClusterAction,
    /// 10.
    DescribeConfigs,
    /// 11.
    AlterConfigs,
    /// 12.
    IdempotentWrite,
}

impl Operation {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    /// The operation of a Kafka code (not ANY or UNKNOWN).
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Operation::All,
            3 => Operation::Read,
            4 => Operation::Write,
            5 => Operation::Create,
            6 => Operation::Delete,
            7 => Operation::Alter,
            8 => Operation::Describe,
            9 => Operation::ClusterAction,
            10 => Operation::DescribeConfigs,
            11 => Operation::AlterConfigs,
            12 => Operation::IdempotentWrite,
            _ => return None,
        })
    }

    /// The operations whose ALLOW also allows `self` (Kafka's implied operations).
    fn allowed_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[
                Operation::Describe,
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs],
            Operation::Read => &[Operation::Read],
            Operation::Write => &[Operation::Write],
            Operation::Create => &[Operation::Create],
            Operation::Delete => &[Operation::Delete],
            Operation::Alter => &[Operation::Alter],
            Operation::ClusterAction => &[Operation::ClusterAction],
            Operation::AlterConfigs => &[Operation::AlterConfigs],
            Operation::IdempotentWrite => &[Operation::IdempotentWrite],
            Operation::All => &[Operation::All],
        }
    }
}

impl std::fmt::Display for Operation {
    /// Kafka's name: `READ`, `DESCRIBE_CONFIGS`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::All => "ALL",
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::Describe => "DESCRIBE",
            Operation::ClusterAction => "CLUSTER_ACTION",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
        })
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// 2.
    Deny,
    /// 3.
    Allow,
}

impl Permission {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: Kafka's `AclBinding`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// What kind of resource.
    pub resource_type: ResourceType,
    /// Its name, `*` (literal) for all.
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// Why a binding cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    /// The binding is not one Kafka would accept.
    #[error("invalid ACL: {0}")]
    Invalid(String),
    /// The ACL file could not be read or written.
    #[error("ACL file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl AclBinding {
    /// Checks the binding as Kafka's CreateAcls does.
    pub fn validate(&self) -> Result<(), AclError> {
        let bad = |m: String| Err(AclError::Invalid(m));
        if self.resource_name.is_empty() {
            return bad("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return bad(format!("the cluster resource is named {CLUSTER_NAME:?}"));
        }
        match self.principal.split_once(':') {
            Some(("User", name)) if !name.is_empty() => {}
            _ => {
                return bad(format!(
                    "principal {:?}: use User:NAME or User:*",
                    self.principal
                ));
            }
        }
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return bad(format!("host {:?}: use an IP address or *", self.host));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return bad("a prefixed pattern cannot be *".into());
        }
        Ok(())
    }

    fn covers_resource(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == "*" || self.resource_name == name,
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    fn covers_principal(&self, principal: &str, host: Option<IpAddr>) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == "*" || host.is_some_and(|h| self.host.parse() == Ok(h)))
    }
}

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The principal of a connection that did not authenticate (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A filter of DescribeAcls and DeleteAcls: each `None` matches anything. A name filter
/// with pattern `Match` (Kafka's MATCH) selects the bindings that would apply to that
/// resource name: its literal ones, `*`, and prefixes of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type.
    pub resource_type: Option<ResourceType>,
    /// Resource name.
    pub resource_name: Option<String>,
    /// `Some(p)`: exactly that pattern type; `None` with `matching` false: any.
    pub pattern_type: Option<PatternType>,
    /// Kafka's MATCH pattern filter.
    pub matching: bool,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation (`All` in a filter is the operation ALL itself, as Kafka).
    pub operation: Option<Operation>,
    /// Permission.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Whether `b` passes the filter.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if self.resource_type.is_some_and(|t| t != b.resource_type)
            || self.operation.is_some_and(|o| o != b.operation)
            || self.permission.is_some_and(|p| p != b.permission)
            || !eq(&self.principal, &b.principal)
            || !eq(&self.host, &b.host)
        {
            return false;
        }
        if self.matching {
            return match &self.resource_name {
                None => true,
                Some(name) => b.covers_resource(b.resource_type, name),
            };
        }
        self.pattern_type.is_none_or(|p| p == b.pattern_type)
            && eq(&self.resource_name, &b.resource_name)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    acls: BTreeSet<AclBinding>,
}

/// The ACLs of a data directory and the super users, deciding requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authorizer {
    path: PathBuf,
    acls: Arc<RwLock<BTreeSet<AclBinding>>>,
    super_users: Arc<BTreeSet<String>>,
}

impl Authorizer {
    /// The ACLs of `data_dir` (none when the file does not exist yet); `super_users` are
    /// principals (`User:admin`) that may do anything.
    pub fn open(
        data_dir: &Path,
        super_users: impl IntoIterator<Item = String>,
    ) -> Result<Self, AclError> {
        let path = data_dir.join("security").join("acls.json");
        let file: File = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AclError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => {
                return Err(AclError::File {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Self {
            path,
            acls: Arc::new(RwLock::new(file.acls)),
            super_users: Arc::new(super_users.into_iter().collect()),
        })
    }

    /// [`authorize`](Self::authorize) with an optional authorizer: `None` (authorization
    /// off) allows everything.
    pub fn allows(
        authorizer: Option<&Authorizer>,
        principal: &str,
        host: Option<IpAddr>,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        authorizer
            .is_none_or(|a| a.authorize(principal, host, operation, resource_type, resource_name))
    }

    /// Whether `principal` from `host` may do `operation` to the resource.
    pub fn authorize(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let acls = self.acls.read().unwrap_or_else(|p| p.into_inner());
        let applicable = || {
            acls.iter().filter(|b| {
                b.covers_resource(resource_type, resource_name)
                    && b.covers_principal(principal, host)
            })
        };
        let denied = applicable().any(|b| {
            b.permission == Permission::Deny
                && (b.operation == Operation::All || b.operation == operation)
        });
        if denied {
            return false;
        }
        applicable().any(|b| {
            b.permission == Permission::Allow
                && (b.operation == Operation::All || operation.allowed_by().contains(&b.operation))
        })
    }

    /// Whether `principal` may do `operation` to some resource of `resource_type`
    /// (Kafka's `authorizeByResourceType`, KIP-679: an idempotent producer needs WRITE on
    /// any topic): yes when an ALLOW of it applies to the principal and no DENY of it
    /// for every resource of the type (`*` or an empty prefix) does.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let acls = self.acls.read().unwrap_or_else(|p| p.into_inner());
        let applicable = || {
            acls.iter()
                .filter(|b| b.resource_type == resource_type && b.covers_principal(principal, host))
        };
        let denied_everywhere = applicable().any(|b| {
            b.permission == Permission::Deny
                && (b.operation == Operation::All || b.operation == operation)
                && b.pattern_type == PatternType::Literal
                && b.resource_name == "*"
        });
        !denied_everywhere
            && applicable().any(|b| {
                b.permission == Permission::Allow
                    && (b.operation == Operation::All
                        || operation.allowed_by().contains(&b.operation))
            })
    }

    /// Whether `principal` is a super user.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// Stores `bindings` (already-present ones are kept once); all or nothing.
    pub fn create(&self, bindings: &[AclBinding]) -> Result<(), AclError> {
        for b in bindings {
            b.validate()?;
        }
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        let mut next = acls.clone();
        next.extend(bindings.iter().cloned());
        self.persist(&next)?;
        *acls = next;
        Ok(())
    }

    /// Removes every binding that `filter` matches and returns them.
    pub fn delete(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, AclError> {
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        let (gone, kept): (BTreeSet<AclBinding>, BTreeSet<AclBinding>) =
            acls.iter().cloned().partition(|b| filter.matches(b));
        if !gone.is_empty() {
            self.persist(&kept)?;
            *acls = kept;
        }
        Ok(gone.into_iter().collect())
    }

    /// The bindings `filter` matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    fn persist(&self, acls: &BTreeSet<AclBinding>) -> Result<(), AclError> {
        let file = File {
            version: 1,
            acls: acls.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("ACLs serialize");
        crate::users::write_atomically(&self.path, &bytes).map_err(|e| AclError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn kafkas_rules_deny_wins_implied_describe_prefixes_and_super_users() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(dir.path(), ["User:admin".to_string()]).unwrap();
        auth.create(&[
            acl(Topic, "orders", Literal, "User:alice", Write, Allow),
            acl(Topic, "payments-", Prefixed, "User:alice", Read, Allow),
            acl(Topic, "payments-secret", Literal, "User:alice", All, Deny),
            acl(Group, "*", Literal, "User:*", Read, Allow),
            acl(Topic, "configs", Literal, "User:bob", AlterConfigs, Allow),
        ])
        .unwrap();
        let may = |who: &str, op, t, name: &str| auth.authorize(who, None, op, t, name);
        assert!(may("User:alice", Write, Topic, "orders"));
        assert!(
            may("User:alice", Describe, Topic, "orders"),
            "WRITE implies DESCRIBE"
        );
        assert!(!may("User:alice", Read, Topic, "orders"));
        assert!(may("User:alice", Read, Topic, "payments-eu"), "prefixed");
        assert!(
            !may("User:alice", Read, Topic, "payments-secret"),
            "deny wins"
        );
        assert!(!may("User:alice", Describe, Topic, "payments-secret"));
        assert!(may("User:bob", Read, Group, "any-group"), "User:* and *");
        assert!(
            may("User:bob", DescribeConfigs, Topic, "configs"),
            "ALTER_CONFIGS implies DESCRIBE_CONFIGS"
        );
        assert!(!may("User:bob", Write, Topic, "orders"), "no ACL: no");
        assert!(!may("User:carol", Create, Cluster, CLUSTER_NAME));
        assert!(
            may("User:admin", Delete, Topic, "payments-secret"),
            "super user"
        );
    }

    #[test]
    fn authorize_any_is_kip_679s_write_on_some_topic() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(dir.path(), []).unwrap();
        auth.create(&[
            acl(Topic, "logs-", Prefixed, "User:a", Write, Allow),
            acl(Topic, "*", Literal, "User:b", Write, Allow),
            acl(Topic, "*", Literal, "User:b", Write, Deny),
            acl(Topic, "t", Literal, "User:c", Read, Allow),
        ])
        .unwrap();
        assert!(auth.authorize_any("User:a", None, Write, Topic));
        assert!(
            !auth.authorize_any("User:b", None, Write, Topic),
            "denied everywhere"
        );
        assert!(
            !auth.authorize_any("User:c", None, Write, Topic),
            "READ is not WRITE"
        );
        assert!(
            auth.authorize_any("User:c", None, Describe, Topic),
            "READ implies DESCRIBE"
        );
        assert!(!auth.authorize_any("User:a", None, Write, Group));
    }

    #[test]
    fn hosts_narrow_a_binding() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(dir.path(), []).unwrap();
        let mut b = acl(Topic, "t", Literal, "User:a", Read, Allow);
        b.host = "10.0.0.1".into();
        auth.create(&[b]).unwrap();
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(auth.authorize("User:a", ip("10.0.0.1"), Read, Topic, "t"));
        assert!(!auth.authorize("User:a", ip("10.0.0.2"), Read, Topic, "t"));
        assert!(!auth.authorize("User:a", None, Read, Topic, "t"));
    }

    #[test]
    fn acls_persist_and_filters_describe_and_delete_them() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(dir.path(), []).unwrap();
        auth.create(&[
            acl(Topic, "orders", Literal, "User:a", Read, Allow),
            acl(Topic, "ord", Prefixed, "User:b", Write, Allow),
            acl(Topic, "*", Literal, "User:c", Describe, Allow),
            acl(Group, "g", Literal, "User:a", Read, Allow),
        ])
        .unwrap();
        let again = Authorizer::open(dir.path(), []).unwrap();
        assert_eq!(again.describe(&AclFilter::default()).len(), 4);
        let matching = AclFilter {
            resource_type: Some(Topic),
            resource_name: Some("orders".into()),
            matching: true,
            ..AclFilter::default()
        };
        assert_eq!(again.describe(&matching).len(), 3, "literal, prefix and *");
        let exact = AclFilter {
            resource_type: Some(Topic),
            resource_name: Some("orders".into()),
            pattern_type: Some(Literal),
            ..AclFilter::default()
        };
        assert_eq!(again.describe(&exact).len(), 1);
        let gone = again
            .delete(&AclFilter {
                principal: Some("User:a".into()),
                ..AclFilter::default()
            })
            .unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(
            Authorizer::open(dir.path(), [])
                .unwrap()
                .describe(&AclFilter::default())
                .len(),
            2
        );
    }

    #[test]
    fn invalid_bindings_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authorizer::open(dir.path(), []).unwrap();
        let good = acl(Topic, "t", Literal, "User:a", Read, Allow);
        for bad in [
            AclBinding {
                principal: "alice".into(),
                ..good.clone()
            },
            AclBinding {
                host: "somewhere".into(),
                ..good.clone()
            },
            AclBinding {
                resource_name: String::new(),
                ..good.clone()
            },
            AclBinding {
                resource_type: Cluster,
                resource_name: "c".into(),
                ..good.clone()
            },
            AclBinding {
                pattern_type: Prefixed,
                resource_name: "*".into(),
                ..good.clone()
            },
        ] {
            assert!(matches!(
                auth.create(&[good.clone(), bad]),
                Err(AclError::Invalid(_))
            ));
        }
        assert!(auth.describe(&AclFilter::default()).is_empty());
        assert!(!dir.path().join("security/acls.json").exists());
    }

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(ResourceType::from_code(2), Some(Topic));
        assert_eq!(Topic.code(), 2);
        assert_eq!(Operation::from_code(12), Some(IdempotentWrite));
        assert_eq!(Read.code(), 3);
        assert_eq!((Deny.code(), Allow.code()), (2, 3));
        assert_eq!(Prefixed.code(), 4);
    }
}
