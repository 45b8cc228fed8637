//! Training end to end in this process: small problems learnt to their known answers, data
//! parallelism, checkpoints and resuming, and each front end's library path (Schrödinger, few-body,
//! video, graphs, matrices). `cargo test --test training`.

#[path = "../common/mod.rs"]
mod common;

mod graph;
mod guard;
mod harmonic;
mod matrix;
mod parallel;
mod particles;
mod resume;
mod schrodinger;
mod video;
