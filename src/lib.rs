//! Spectral Inference Networks (Pfau et al., ICLR 2019) with hand-written WGSL kernels on wgpu.
//!
//! Layers, from the bottom: [`gpu`] (device, kernels), [`nn`] (networks and their CPU f64
//! oracle), [`operators`] (the linear operators and the batches they need), [`spin`] (the SpIN
//! step: GPU engine, host statistics, optimisers, trainer), [`experiments`] (matrix, bench).

pub mod error;
pub mod gpu;

pub use error::{Result, SpinError};
pub mod experiments;
pub mod io;
pub mod nn;
pub mod operators;
pub mod spin;
