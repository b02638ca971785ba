//! herald-log: the durable partition log under Herald.
#![deny(missing_docs)]

pub mod batch;
