//! A topic: a name, an id, configuration overrides and partitions; and Kafka's rules for
//! topic names.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use uuid::Uuid;

use crate::{error::TopicError, partition::Partition};

/// Longest topic name Kafka accepts.
pub(crate) const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`,
/// and not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are not allowed")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("the name is longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) configs: RwLock<BTreeMap<String, String>>,
    pub(crate) partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic id (Kafka's topic UUID).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Configuration overrides in Kafka's names.
    pub fn configs(&self) -> BTreeMap<String, String> {
        self.configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i32
    }

    /// One partition, if the index exists.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i).cloned())
    }

    /// All partitions, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A request to create a topic.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Configuration overrides in Kafka's names.
    pub configs: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders.v1", "A_b-C.9", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(TopicError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
