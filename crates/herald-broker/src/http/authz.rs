//! Authorization of the HTTP API with Kafka's ACLs: each route needs the operation a
//! Kafka client would need for the same thing (docs/security.md has the table). The
//! caller is the HTTP Basic user, or `User:ANONYMOUS` without authentication. A denied
//! request gets 403 with code 40302 and changes nothing.
//!
//! Routes that name their resource in the path are checked here, before the handler
//! runs; the lists (`GET /topics`, `GET /groups`) leave out what the caller may not
//! describe, and `POST /topics` checks the name in its body, in their handlers.

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use herald_security::{Authorizer, CLUSTER_NAME, Caller, Operation, ResourceType};

use super::error::ApiError;

/// [`Caller::may`], or the 403 that says what is missing (logged and counted).
pub(crate) fn require(
    caller: &Caller,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> Result<(), ApiError> {
    if caller.may(operation, resource_type, name) {
        return Ok(());
    }
    crate::telemetry::http_authorization_denied(&caller.principal, operation, resource_type, name);
    Err(ApiError::not_authorized(format!(
        "{} may not {operation} {} {name:?} (ACLs; docs/security.md)",
        caller.principal,
        kind(resource_type)
    )))
}

/// CREATE on the cluster or on the topic, as CreateTopics needs.
pub(crate) fn require_create_topic(caller: &Caller, name: &str) -> Result<(), ApiError> {
    if caller.may(Operation::Create, ResourceType::Cluster, CLUSTER_NAME) {
        return Ok(());
    }
    require(caller, Operation::Create, ResourceType::Topic, name)
}

/// Whether the caller sees every group (DESCRIBE on the cluster), as ListGroups.
pub(crate) fn sees_all_groups(caller: &Caller) -> bool {
    caller.may(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME)
}

fn kind(resource_type: ResourceType) -> &'static str {
    match resource_type {
        ResourceType::Topic => "topic",
        ResourceType::Group => "group",
        ResourceType::Cluster => "the cluster",
        ResourceType::TransactionalId => "transactional id",
    }
}

/// What a route needs: `(operation, resource type, name)`, all of them.
fn required(
    method: &Method,
    path: &str,
    metrics_auth: bool,
) -> Vec<(Operation, ResourceType, String)> {
    use Operation::*;
    use ResourceType::*;
    let segments = herald_security::path_segments(path);
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let topic = |op, name: &str| (op, Topic, name.to_owned());
    let group = |op, name: &str| (op, Group, name.to_owned());
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match s.as_slice() {
        ["metrics"] if metrics_auth => vec![(Describe, Cluster, CLUSTER_NAME.to_owned())],
        ["api", "v1", "topics", name] if get => vec![topic(Describe, name)],
        ["api", "v1", "topics", name] if method == Method::DELETE => vec![topic(Delete, name)],
        ["api", "v1", "topics", name, "partitions"] if post => vec![topic(Alter, name)],
        ["api", "v1", "topics", name, "records"] if post => vec![topic(Write, name)],
        ["api", "v1", "topics", name, "partitions", _, "records"] if get => {
            vec![topic(Read, name)]
        }
        ["api", "v1", "groups", id] if get => vec![group(Describe, id)],
        // Security administration, as Kafka's ACL and SCRAM APIs.
        ["api", "v1", "acls" | "users", ..] if get => {
            vec![(Describe, Cluster, CLUSTER_NAME.to_owned())]
        }
        ["api", "v1", "acls" | "users", ..] => vec![(Alter, Cluster, CLUSTER_NAME.to_owned())],
        // Dead letters of (topic, group): reading them is reading the topic's records;
        // replaying writes them back to the topic; replay and discard resolve them for
        // the group, as consuming and committing do.
        ["api", "v1", "dlq", t, g, "replay"] if post => {
            vec![topic(Read, t), topic(Write, t), group(Read, g)]
        }
        ["api", "v1", "dlq", t, g, "discard"] if post => vec![topic(Read, t), group(Read, g)],
        ["api", "v1", "dlq", t, g] | ["api", "v1", "dlq", t, g, _] if get => {
            vec![topic(Read, t), group(Describe, g)]
        }
        _ => Vec::new(),
    }
}

/// The settings the middleware runs with.
#[derive(Debug, Clone)]
pub(crate) struct Authorization {
    pub(crate) authorizer: Option<Authorizer>,
    pub(crate) metrics_auth: bool,
}

/// The middleware: names the caller for the handlers, and checks the route's needs.
pub(crate) async fn authorize(
    State(settings): State<Authorization>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = Caller::of(request.extensions(), settings.authorizer.clone());
    if caller.is_checked() {
        for (op, resource_type, name) in required(
            request.method(),
            request.uri().path(),
            settings.metrics_auth,
        ) {
            if let Err(e) = require(&caller, op, resource_type, &name) {
                return e.into_response();
            }
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_what_kafka_would() {
        let needs = |m: Method, p: &str| -> Vec<(Operation, ResourceType, String)> {
            required(&m, p, true)
        };
        let t = |op, n: &str| (op, ResourceType::Topic, n.to_string());
        let g = |op, n: &str| (op, ResourceType::Group, n.to_string());
        assert_eq!(
            needs(Method::GET, "/api/v1/topics/orders"),
            vec![t(Operation::Describe, "orders")]
        );
        assert_eq!(
            needs(Method::DELETE, "/api/v1/topics/orders"),
            vec![t(Operation::Delete, "orders")]
        );
        assert_eq!(
            needs(Method::POST, "/api/v1/topics/orders/records"),
            vec![t(Operation::Write, "orders")]
        );
        assert_eq!(
            needs(Method::GET, "/api/v1/topics/orders/partitions/0/records"),
            vec![t(Operation::Read, "orders")]
        );
        assert_eq!(
            needs(Method::GET, "/api/v1/groups/billing%20team"),
            vec![g(Operation::Describe, "billing team")]
        );
        assert_eq!(
            needs(Method::POST, "/api/v1/dlq/orders/billing/replay"),
            vec![
                t(Operation::Read, "orders"),
                t(Operation::Write, "orders"),
                g(Operation::Read, "billing")
            ]
        );
        assert_eq!(
            needs(Method::GET, "/metrics"),
            vec![(
                Operation::Describe,
                ResourceType::Cluster,
                CLUSTER_NAME.to_string()
            )]
        );
        assert!(required(&Method::GET, "/metrics", false).is_empty());
        assert!(needs(Method::GET, "/health").is_empty());
        assert!(
            needs(Method::GET, "/api/v1/topics").is_empty(),
            "filtered in the handler"
        );
    }
}
