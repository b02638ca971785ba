//! herald-bench: workloads that drive Herald and its peers with the same load.
#![deny(missing_docs)]
