//! Authorization of Kafka requests: the checks each handler makes before it acts, with
//! the operation and resource Apache Kafka's `KafkaApis` checks for the same request
//! (docs/security.md has the table). With no authorizer configured every check passes,
//! at the cost of one branch.

use herald_security::{CLUSTER_NAME, Operation, ResourceType};

use super::Ctx;

/// Every operation Kafka can report in an `authorized_operations` bit field, by resource.
const TOPIC_OPS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
const GROUP_OPS: &[Operation] = &[Operation::Read, Operation::Delete, Operation::Describe];
const CLUSTER_OPS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

fn operations_of(resource_type: ResourceType) -> &'static [Operation] {
    match resource_type {
        ResourceType::Topic => TOPIC_OPS,
        ResourceType::Group => GROUP_OPS,
        ResourceType::Cluster => CLUSTER_OPS,
        ResourceType::TransactionalId => &[Operation::Write, Operation::Describe],
    }
}

impl Ctx<'_> {
    /// Whether authorization is on (an authorizer is configured).
    pub(crate) fn authorizing(&self) -> bool {
        self.broker.config().authorizer.is_some()
    }

    /// Whether the request's principal may do `operation` to the resource; a denial is
    /// counted and logged.
    pub(crate) fn may(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.may_quietly(operation, resource_type, name);
        if !allowed {
            crate::telemetry::authorization_denied(
                self.api,
                self.principal,
                self.peer.ip(),
                operation,
                resource_type,
                name,
            );
        }
        allowed
    }

    /// As [`may`](Self::may) without the log: for lists that leave out what the
    /// principal may not see (Metadata of all topics, ListGroups), as Kafka does.
    pub(crate) fn may_quietly(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        herald_security::Authorizer::allows(
            self.broker.config().authorizer.as_ref(),
            self.principal,
            Some(self.peer.ip()),
            operation,
            resource_type,
            name,
        )
    }

    /// `operation` on the cluster resource.
    pub(crate) fn may_on_cluster(&self, operation: Operation) -> bool {
        self.may(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `operation` on the topic `name`.
    pub(crate) fn may_on_topic(&self, operation: Operation, name: &str) -> bool {
        self.may(operation, ResourceType::Topic, name)
    }

    /// `operation` on the group `id`.
    pub(crate) fn may_on_group(&self, operation: Operation, id: &str) -> bool {
        self.may(operation, ResourceType::Group, id)
    }

    /// `operation` on some resource of the type (KIP-679's check for idempotent
    /// producers: WRITE on any topic).
    pub(crate) fn may_on_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        match &self.broker.config().authorizer {
            None => true,
            Some(a) => a.authorize_any(
                self.principal,
                Some(self.peer.ip()),
                operation,
                resource_type,
            ),
        }
    }

    /// Kafka's `authorized_operations` bit field for one resource: a bit per operation
    /// code the principal may do (every operation of the type with no authorizer).
    pub(crate) fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        operations_of(resource_type)
            .iter()
            .filter(|op| self.may_quietly(**op, resource_type, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }
}
