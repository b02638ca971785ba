//! The `herald` command line.
fn main() {}
