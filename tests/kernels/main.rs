//! Fast loop: every kernel against its CPU f64 oracle, finite differences of every hand-written
//! derivative, the fused gradient, conv layers, the exchange-symmetrised network, naga validation
//! of the WGSL, and the host maths and data readers that need no training.
//! `cargo test --test kernels`.

#[path = "../common/mod.rs"]
mod common;

mod against_oracle;
mod conv;
mod conv_net;
mod derivatives;
mod evaluation;
mod exchange;
mod fused;
mod video_data;
mod wgsl_validate;
