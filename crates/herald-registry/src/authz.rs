//! Authorization of the registry's REST API with Kafka's ACLs. A subject is governed by
//! the topic it describes: `orders-value` and `orders-key` by topic `orders` (the
//! TopicNameStrategy every serializer uses by default), any other subject (a record
//! name, `com.acme.Order`) by a topic resource of the same name, so a prefixed ACL
//! (`com.acme.`) covers a namespace. docs/security.md has the table:
//!
//! | operation | needs |
//! | --- | --- |
//! | read a subject's versions, look up, check compatibility | DESCRIBE on its topic |
//! | register a schema | WRITE on its topic (what a producer with `auto.register.schemas` has) |
//! | delete a subject or a version | DELETE on its topic |
//! | read or change a subject's config or mode | DESCRIBE_CONFIGS / ALTER_CONFIGS on its topic |
//! | read or change the global config or mode | DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster |
//! | a schema by id | DESCRIBE on the topic of some subject that has it |
//! | list subjects or schemas | those whose topic the caller may describe |
//!
//! The caller is the HTTP Basic user, or `User:ANONYMOUS`. A denied request gets 403
//! with Confluent's code 40301 and changes nothing.

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use herald_security::{Authorizer, CLUSTER_NAME, Caller, Operation, ResourceType};

use crate::registry::Registry;

/// The topic resource that governs `subject`.
pub fn subject_topic(subject: &str) -> &str {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .filter(|t| !t.is_empty())
        .unwrap_or(subject)
}

/// Whether `caller` may see `subject` in a list: DESCRIBE on its topic.
pub(crate) fn sees(caller: &Caller, subject: &str) -> bool {
    caller.may(
        Operation::Describe,
        ResourceType::Topic,
        subject_topic(subject),
    )
}

/// What a route needs, or `None` for routes open to any caller. `Id` routes are checked
/// against the subjects that have the schema.
enum Need {
    On(Operation, ResourceType, String),
    SchemaId(String),
}

fn required(method: &Method, path: &str) -> Vec<Need> {
    use Operation::*;
    let segments = herald_security::path_segments(path);
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let topic = |op, subject: &str| {
        vec![Need::On(
            op,
            ResourceType::Topic,
            subject_topic(subject).to_owned(),
        )]
    };
    let cluster = |op| vec![Need::On(op, ResourceType::Cluster, CLUSTER_NAME.to_owned())];
    let read = method == Method::GET || method == Method::HEAD;
    let change = method == Method::PUT || method == Method::DELETE;
    match s.as_slice() {
        ["schemas", "ids", id, ..] => vec![Need::SchemaId((*id).to_owned())],
        ["subjects", subject] if method == Method::POST => topic(Describe, subject),
        ["subjects", subject] if method == Method::DELETE => topic(Delete, subject),
        ["subjects", subject, "versions"] if method == Method::POST => topic(Write, subject),
        ["subjects", subject, "versions", _] if method == Method::DELETE => topic(Delete, subject),
        ["subjects", subject, ..] if read => topic(Describe, subject),
        ["compatibility", "subjects", subject, ..] => topic(Describe, subject),
        ["config" | "mode"] if read => cluster(DescribeConfigs),
        ["config" | "mode"] if change => cluster(AlterConfigs),
        ["config" | "mode", subject] if read => topic(DescribeConfigs, subject),
        ["config" | "mode", subject] if change => topic(AlterConfigs, subject),
        _ => Vec::new(),
    }
}

/// The settings of the middleware.
#[derive(Clone)]
pub(crate) struct Authorization {
    pub(crate) registry: Registry,
    pub(crate) authorizer: Authorizer,
    /// The registry's 403 in its error format.
    pub(crate) deny: fn(String) -> Response,
}

/// The middleware: checks what the route needs, then names the caller for the handlers.
pub(crate) async fn authorize(
    State(settings): State<Authorization>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = Caller::of(request.extensions(), Some(settings.authorizer.clone()));
    for need in required(request.method(), request.uri().path()) {
        let (allowed, what) = match need {
            Need::On(op, resource_type, name) => (
                caller.may(op, resource_type, &name),
                format!(
                    "{op} on {} {name:?}",
                    if resource_type == ResourceType::Cluster {
                        "the cluster"
                    } else {
                        "topic"
                    }
                ),
            ),
            Need::SchemaId(id) => {
                let subjects = id
                    .parse::<u32>()
                    .ok()
                    .and_then(|id| settings.registry.id_versions(id, true).ok())
                    .unwrap_or_default();
                // An unknown id is the handler's 404 for anyone who may see any subject.
                let allowed = if subjects.is_empty() {
                    true
                } else {
                    subjects.iter().any(|sv| sees(&caller, &sv.subject))
                };
                (
                    allowed,
                    format!("DESCRIBE on the topic of a subject of schema {id}"),
                )
            }
        };
        if !allowed {
            tracing::info!(principal = %caller.principal, path = %request.uri().path(), needs = %what, "schema registry request denied by the ACLs");
            return (settings.deny)(format!(
                "{} may not do this: it needs {what} (ACLs; docs/security.md)",
                caller.principal
            ));
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_map_to_their_topics() {
        assert_eq!(subject_topic("orders-value"), "orders");
        assert_eq!(subject_topic("orders-key"), "orders");
        assert_eq!(subject_topic("com.acme.Order"), "com.acme.Order");
        assert_eq!(subject_topic("-value"), "-value");
    }

    #[test]
    fn routes_need_what_the_table_says() {
        let on = |m: Method, p: &str| -> Vec<(Operation, ResourceType, String)> {
            required(&m, p)
                .into_iter()
                .filter_map(|n| match n {
                    Need::On(o, t, s) => Some((o, t, s)),
                    Need::SchemaId(_) => None,
                })
                .collect()
        };
        let t = |o, s: &str| vec![(o, ResourceType::Topic, s.to_string())];
        assert_eq!(
            on(Method::POST, "/subjects/orders-value/versions"),
            t(Operation::Write, "orders")
        );
        assert_eq!(
            on(Method::GET, "/subjects/orders-value/versions/latest"),
            t(Operation::Describe, "orders")
        );
        assert_eq!(
            on(Method::DELETE, "/subjects/orders-value"),
            t(Operation::Delete, "orders")
        );
        assert_eq!(
            on(Method::DELETE, "/subjects/orders-value/versions/1"),
            t(Operation::Delete, "orders")
        );
        assert_eq!(
            on(Method::PUT, "/config/orders-value"),
            t(Operation::AlterConfigs, "orders")
        );
        assert_eq!(
            on(Method::PUT, "/config"),
            vec![(
                Operation::AlterConfigs,
                ResourceType::Cluster,
                CLUSTER_NAME.to_string()
            )]
        );
        assert!(
            matches!(required(&Method::GET, "/schemas/ids/3").as_slice(), [Need::SchemaId(id)] if id == "3")
        );
        assert!(
            on(Method::GET, "/subjects").is_empty(),
            "filtered in the handler"
        );
        assert!(on(Method::GET, "/").is_empty());
    }
}
