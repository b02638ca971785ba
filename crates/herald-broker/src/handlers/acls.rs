//! Security administration over the Kafka protocol: CreateAcls, DescribeAcls and
//! DeleteAcls v1–v3 (KIP-140, KIP-290), and DescribeUserScramCredentials and
//! AlterUserScramCredentials v0 (KIP-554), as Kafka's AdminClient, kcat and
//! `kafka-acls.sh` use them.
//!
//! The ACL APIs need ALTER (create, delete) or DESCRIBE (describe) on the cluster and
//! answer SECURITY_DISABLED when the broker has no authorizer, as Kafka does. The SCRAM
//! APIs need ALTER or DESCRIBE on the cluster; with no authorizer they are open, as on
//! Kafka, so that a laptop broker can be given its users before SASL is turned on.

use std::collections::{BTreeMap, HashSet};

use herald_security::{
    AclBinding, AclFilter, Authorizer, Operation, PatternType, Permission, ResourceType, ScramHash,
    UserStore,
    scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramCredential},
};
use kafka_protocol::{
    ResponseError,
    messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
        CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
        DescribeAclsResponse, DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsResponse,
        alter_user_scram_credentials_response::AlterUserScramCredentialsResult,
        create_acls_response::AclCreationResult,
        delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl},
        describe_acls_response::{AclDescription, DescribeAclsResource},
        describe_user_scram_credentials_response::{
            CredentialInfo, DescribeUserScramCredentialsResult,
        },
    },
    protocol::StrBytes,
};

use super::Ctx;

const ANY: i8 = 1;
const MATCH: i8 = 2;

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// The authorizer, or the SECURITY_DISABLED refusal a Kafka broker without one gives.
fn authorizer<'a>(ctx: &Ctx<'a>) -> Result<&'a Authorizer, (i16, Option<StrBytes>)> {
    ctx.broker.config().authorizer.as_ref().ok_or_else(|| {
        (
            ResponseError::SecurityDisabled.code(),
            text(
                "authorization is off on this broker (no authenticated listener): give a \
                 listener SASL or client certificates to use ACLs (docs/security.md)",
            ),
        )
    })
}

fn cluster_denied(ctx: &Ctx<'_>, operation: Operation) -> Option<(i16, Option<StrBytes>)> {
    (!ctx.may_on_cluster(operation)).then(|| {
        (
            ResponseError::ClusterAuthorizationFailed.code(),
            text(format!("{} may not {operation} the cluster", ctx.principal)),
        )
    })
}

/// One creation as a binding, or why Kafka would refuse it.
fn binding(
    c: &kafka_protocol::messages::create_acls_request::AclCreation,
) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_code(c.resource_type).ok_or_else(|| {
        format!(
            "resource type {} is not one an ACL can name here",
            c.resource_type
        )
    })?;
    let pattern_type = match c.resource_pattern_type {
        3 => PatternType::Literal,
        4 => PatternType::Prefixed,
        other => {
            return Err(format!(
                "pattern type {other}: use LITERAL (3) or PREFIXED (4)"
            ));
        }
    };
    let operation = Operation::from_code(c.operation)
        .ok_or_else(|| format!("operation {} is not a concrete operation", c.operation))?;
    let permission = match c.permission_type {
        2 => Permission::Deny,
        3 => Permission::Allow,
        other => return Err(format!("permission {other}: use DENY (2) or ALLOW (3)")),
    };
    let b = AclBinding {
        resource_type,
        resource_name: c.resource_name.to_string(),
        pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    };
    b.validate().map_err(|e| e.to_string())?;
    Ok(b)
}

/// CreateAcls: each creation is stored or refused on its own (INVALID_REQUEST).
pub(crate) async fn create_acls(ctx: Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let mut resp = CreateAclsResponse::default();
    let refusal = authorizer(&ctx)
        .err()
        .or_else(|| cluster_denied(&ctx, Operation::Alter));
    for c in &req.creations {
        let mut r = AclCreationResult::default();
        if let Some((code, message)) = &refusal {
            (r.error_code, r.error_message) = (*code, message.clone());
            resp.results.push(r);
            continue;
        }
        let outcome = binding(c).and_then(|b| {
            authorizer(&ctx)
                .expect("checked above")
                .create(std::slice::from_ref(&b))
                .map(|()| b)
                .map_err(|e| e.to_string())
        });
        match outcome {
            Ok(b) => tracing::info!(principal = %ctx.principal, acl = ?b, "ACL created"),
            Err(message) => {
                tracing::info!(principal = %ctx.principal, error = %message, "ACL refused");
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = text(message);
            }
        }
        resp.results.push(r);
    }
    resp
}

/// The filter of a DescribeAcls or DeleteAcls request, or `None` when it can match
/// nothing Herald stores (a resource type Herald has no ACLs for), or the refusal of a
/// malformed one.
#[allow(clippy::too_many_arguments)] // why: the wire filter's seven fields, as Kafka lists them
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<Option<AclFilter>, String> {
    let resource_type = match resource_type {
        ANY => None,
        code => match ResourceType::from_code(code) {
            Some(t) => Some(t),
            None if (6..=7).contains(&code) => return Ok(None),
            None => return Err(format!("resource type filter {code} is not valid")),
        },
    };
    let (pattern_type, matching) = match pattern_type {
        ANY => (None, false),
        MATCH => (None, true),
        3 => (Some(PatternType::Literal), false),
        4 => (Some(PatternType::Prefixed), false),
        other => return Err(format!("pattern type filter {other} is not valid")),
    };
    let operation = match operation {
        ANY => None,
        code => Some(
            Operation::from_code(code)
                .ok_or_else(|| format!("operation filter {code} is not valid"))?,
        ),
    };
    let permission = match permission {
        ANY => None,
        2 => Some(Permission::Deny),
        3 => Some(Permission::Allow),
        other => return Err(format!("permission filter {other} is not valid")),
    };
    Ok(Some(AclFilter {
        resource_type,
        resource_name: name.map(|n| n.to_string()),
        pattern_type,
        matching,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation,
        permission,
    }))
}

/// DescribeAcls: the bindings the filter matches, grouped by resource pattern.
pub(crate) async fn describe_acls(ctx: Ctx<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let mut resp = DescribeAclsResponse::default();
    let auth = match authorizer(&ctx) {
        Ok(a) => a,
        Err((code, message)) => {
            (resp.error_code, resp.error_message) = (code, message);
            return resp;
        }
    };
    if let Some((code, message)) = cluster_denied(&ctx, Operation::Describe) {
        (resp.error_code, resp.error_message) = (code, message);
        return resp;
    }
    let wanted = match filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(Some(f)) => f,
        Ok(None) => return resp,
        Err(message) => {
            resp.error_code = ResponseError::InvalidRequest.code();
            resp.error_message = text(message);
            return resp;
        }
    };
    let mut grouped: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in auth.describe(&wanted) {
        let mut d = AclDescription::default();
        d.principal = StrBytes::from_string(b.principal);
        d.host = StrBytes::from_string(b.host);
        d.operation = b.operation.code();
        d.permission_type = b.permission.code();
        grouped
            .entry((
                b.resource_type.code(),
                b.resource_name,
                b.pattern_type.code(),
            ))
            .or_default()
            .push(d);
    }
    resp.resources = grouped
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            let mut r = DescribeAclsResource::default();
            r.resource_type = resource_type;
            r.resource_name = StrBytes::from_string(name);
            r.pattern_type = pattern_type;
            r.acls = acls;
            r
        })
        .collect();
    resp
}

/// DeleteAcls: per filter, the bindings it matched and removed.
pub(crate) async fn delete_acls(ctx: Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let mut resp = DeleteAclsResponse::default();
    let refusal = authorizer(&ctx)
        .err()
        .or_else(|| cluster_denied(&ctx, Operation::Alter));
    for f in &req.filters {
        let mut r = DeleteAclsFilterResult::default();
        if let Some((code, message)) = &refusal {
            (r.error_code, r.error_message) = (*code, message.clone());
            resp.filter_results.push(r);
            continue;
        }
        let parsed = filter(
            f.resource_type_filter,
            f.resource_name_filter.as_ref(),
            f.pattern_type_filter,
            f.principal_filter.as_ref(),
            f.host_filter.as_ref(),
            f.operation,
            f.permission_type,
        );
        let deleted = match parsed {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(f)) => authorizer(&ctx)
                .expect("checked above")
                .delete(&f)
                .map_err(|e| (ResponseError::UnknownServerError.code(), e.to_string())),
            Err(message) => Err((ResponseError::InvalidRequest.code(), message)),
        };
        match deleted {
            Ok(gone) => {
                if !gone.is_empty() {
                    tracing::info!(principal = %ctx.principal, acls = gone.len(), "ACLs deleted");
                }
                r.matching_acls = gone
                    .into_iter()
                    .map(|b| {
                        let mut m = DeleteAclsMatchingAcl::default();
                        m.resource_type = b.resource_type.code();
                        m.resource_name = StrBytes::from_string(b.resource_name);
                        m.pattern_type = b.pattern_type.code();
                        m.principal = StrBytes::from_string(b.principal);
                        m.host = StrBytes::from_string(b.host);
                        m.operation = b.operation.code();
                        m.permission_type = b.permission.code();
                        m
                    })
                    .collect();
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = text(message);
            }
        }
        resp.filter_results.push(r);
    }
    resp
}

/// The user store the SCRAM APIs manage: the one SASL checks, else the data directory's.
fn users(ctx: &Ctx<'_>) -> Result<UserStore, String> {
    let config = ctx.broker.config();
    if let Some(u) = config
        .users
        .as_ref()
        .or(config.sasl.as_ref().map(|s| &s.users))
    {
        return Ok(u.clone());
    }
    UserStore::open(&config.data_dir).map_err(|e| e.to_string())
}

/// DescribeUserScramCredentials: each user's mechanisms and iterations (never a salt or
/// key); every user when none is named.
pub(crate) async fn describe_user_scram_credentials(
    ctx: Ctx<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if let Some((code, message)) = cluster_denied(&ctx, Operation::Describe) {
        (resp.error_code, resp.error_message) = (code, message);
        return resp;
    }
    let store = match users(&ctx) {
        Ok(s) => s,
        Err(message) => {
            resp.error_code = ResponseError::UnknownServerError.code();
            resp.error_message = text(message);
            return resp;
        }
    };
    let all = store.list();
    let info = |mechanisms: &[(ScramHash, u32)]| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(hash, iterations)| {
                let mut c = CredentialInfo::default();
                c.mechanism = hash.kafka_code();
                c.iterations = *iterations as i32;
                c
            })
            .collect()
    };
    let named: Vec<String> = req
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    if named.is_empty() {
        resp.results = all
            .iter()
            .map(|u| {
                let mut r = DescribeUserScramCredentialsResult::default();
                r.user = StrBytes::from_string(u.name.clone());
                r.credential_infos = info(&u.mechanisms);
                r
            })
            .collect();
        return resp;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &named {
        *counts.entry(n).or_default() += 1;
    }
    let mut seen = HashSet::new();
    for name in &named {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = StrBytes::from_string(name.clone());
        if counts[name.as_str()] > 1 {
            r.error_code = ResponseError::DuplicateResource.code();
            r.error_message = text(format!("user {name:?} is named more than once"));
        } else {
            match all.iter().find(|u| &u.name == name) {
                Some(u) => r.credential_infos = info(&u.mechanisms),
                None => {
                    r.error_code = ResponseError::ResourceNotFound.code();
                    r.error_message = text(format!(
                        "attempt to describe a user credential that does not exist: {name}"
                    ));
                }
            }
        }
        resp.results.push(r);
    }
    resp
}

/// AlterUserScramCredentials: upserts (a salted password, as Kafka's AdminClient sends
/// it) and deletions, each user all or nothing; stored durably before the answer.
pub(crate) async fn alter_user_scram_credentials(
    ctx: Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut resp = AlterUserScramCredentialsResponse::default();
    let mut order: Vec<String> = Vec::new();
    let mut per_user: BTreeMap<String, (Vec<i8>, Vec<&_>)> = BTreeMap::new();
    let mut counts: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for d in &req.deletions {
        let name = d.name.to_string();
        *counts.entry((name.clone(), d.mechanism)).or_default() += 1;
        if !per_user.contains_key(&name) {
            order.push(name.clone());
        }
        per_user.entry(name).or_default().0.push(d.mechanism);
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        *counts.entry((name.clone(), u.mechanism)).or_default() += 1;
        if !per_user.contains_key(&name) {
            order.push(name.clone());
        }
        per_user.entry(name).or_default().1.push(u);
    }
    let refusal = cluster_denied(&ctx, Operation::Alter);
    let store = users(&ctx);
    for name in order {
        let (deletions, upsertions) = &per_user[&name];
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = StrBytes::from_string(name.clone());
        let outcome: Result<(), (i16, String)> = (|| {
            if let Some((code, message)) = &refusal {
                return Err((
                    *code,
                    message.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                ));
            }
            let store = store
                .as_ref()
                .map_err(|e| (ResponseError::UnknownServerError.code(), e.clone()))?;
            if name.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential.code(),
                    "user name is empty".into(),
                ));
            }
            if counts.iter().any(|((n, _), c)| *n == name && *c > 1) {
                return Err((
                    ResponseError::DuplicateResource.code(),
                    format!(
                        "a credential of user {name:?} is altered more than once in the request"
                    ),
                ));
            }
            let hash = |code: i8| {
                ScramHash::from_kafka_code(code).ok_or((
                    ResponseError::UnsupportedSaslMechanism.code(),
                    format!("unknown SCRAM mechanism {code}"),
                ))
            };
            let mut removals = Vec::new();
            for m in deletions {
                let h = hash(*m)?;
                let has = store
                    .list()
                    .iter()
                    .any(|u| u.name == name && u.mechanisms.iter().any(|(x, _)| *x == h));
                if !has {
                    return Err((
                        ResponseError::ResourceNotFound.code(),
                        format!(
                            "attempt to delete a user credential that does not exist: {name} {}",
                            h.mechanism()
                        ),
                    ));
                }
                removals.push(h);
            }
            let mut credentials = Vec::new();
            for u in upsertions {
                let h = hash(u.mechanism)?;
                let iterations = u.iterations;
                if !(MIN_ITERATIONS as i32..=MAX_ITERATIONS as i32).contains(&iterations) {
                    return Err((
                        ResponseError::UnacceptableCredential.code(),
                        format!(
                            "{iterations} iterations: use {MIN_ITERATIONS} to {MAX_ITERATIONS}"
                        ),
                    ));
                }
                if u.salted_password.len() != h.output_len() || u.salt.is_empty() {
                    return Err((
                        ResponseError::UnacceptableCredential.code(),
                        "the salted password or salt is malformed".into(),
                    ));
                }
                credentials.push(ScramCredential::from_salted_password(
                    h,
                    &u.salted_password,
                    u.salt.to_vec(),
                    iterations as u32,
                ));
            }
            let failed = |e: herald_security::UserError| {
                (ResponseError::UnacceptableCredential.code(), e.to_string())
            };
            if !credentials.is_empty() {
                store.set_credentials(&name, credentials).map_err(failed)?;
            }
            for h in removals {
                store.remove(&name, Some(h)).map_err(failed)?;
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => {
                tracing::info!(principal = %ctx.principal, user = %name, "SCRAM credentials altered")
            }
            Err((code, message)) => {
                tracing::info!(principal = %ctx.principal, user = %name, error = %message, "SCRAM credential change refused");
                r.error_code = code;
                r.error_message = text(message);
            }
        }
        resp.results.push(r);
    }
    resp
}
