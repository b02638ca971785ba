//! herald-log: the durable partition log under Herald.
#![deny(missing_docs)]

pub mod batch;
pub mod config;
pub mod error;
pub mod records;
