//! Names that keep tests apart: a schema, consumer group or topic that no other test, in
//! this process or a parallel one, uses.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// `<prefix>_<pid>_<n>_<nanos>`: unique within the process by a counter, across processes
/// by the process id and the clock. Letters, digits and `_` only (given such a prefix),
/// so it serves as an unquoted SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_are_identifiers() {
        let a = unique_name("hsql");
        let b = unique_name("hsql");
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("hsql_{}_", std::process::id())),
            "{a}"
        );
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }
}
