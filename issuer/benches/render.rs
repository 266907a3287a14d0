//! Benchmarks of certificate rendering (filled in below).
fn main() {}
