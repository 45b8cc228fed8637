//! The `spin` binary as a user meets it: `spin matrix` end to end, bad input's clear errors,
//! first use, progress lines, reports and worker processes. `cargo test --test cli`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/ranks.rs"]
mod ranks;

mod errors;
mod first_use;
mod matrix;
mod reports;
mod workers;
