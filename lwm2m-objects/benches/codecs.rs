//! PLACEHOLDER bench.
fn main() {}
