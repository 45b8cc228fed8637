//! Spectral Inference Networks (Pfau et al., ICLR 2019) with hand-written WGSL kernels on wgpu.
//!
//! Layers, from the bottom: [`gpu`] (device, kernels), [`nn`] (networks and their CPU f64
//! oracle), [`operators`] (the linear operators and the batches they need), [`spin`] (the SpIN
//! step: GPU engine, host statistics, optimisers, trainer), [`experiments`] (matrix, bench).
//!
//! A network is a list of layers built from a [`nn::NetworkSpec`]; here the paper's video net
//! (C.2) on 64×64 frame pairs, with 12 learned eigenfunctions after a constant one:
//!
//! ```
//! use spectral_inference::nn::{Activation, Conv2dSpec, ImageShape, LayerKind, NetworkSpec, Padding};
//!
//! let conv = Conv2dSpec { channels: 32, kernel: 5, stride: 2, padding: Padding::Same };
//! let spec = NetworkSpec {
//!     input_dim: 64 * 64 * 2,
//!     image: Some(ImageShape { height: 64, width: 64, channels: 2 }),
//!     conv: vec![conv; 3],
//!     hidden: vec![128],
//!     outputs: 13,
//!     activation: Activation::Relu,
//!     constant_first: true,
//!     ..Default::default()
//! };
//! spec.validate()?;
//! let layers = spec.layers();
//! assert_eq!(layers.len(), 5);
//! // 64 → 32 → 16 → 8 pixels: the dense layer reads the flattened 8×8×32 maps.
//! assert!(matches!(layers[2].kind, LayerKind::Conv2d(g) if g.out_h == 8));
//! assert_eq!(layers[3].inputs, 8 * 8 * 32);
//! // The constant first eigenfunction is frozen: its 128 weights and its bias.
//! let frozen = spec.structural_mask().unwrap().iter().filter(|&&m| m == 0.0).count();
//! assert_eq!(frozen, 129);
//! # Ok::<(), spectral_inference::SpinError>(())
//! ```
//!
//! Every CSV the program reads goes through one reader, which takes an optional header:
//!
//! ```
//! let t = spectral_inference::io::parse_numbers_csv("x0,x1\n0.5,1\n-2,3e-1\n").unwrap();
//! assert_eq!(t.header.unwrap(), ["x0", "x1"]);
//! assert_eq!(t.rows[1], [-2.0, 0.3]);
//! ```

pub mod error;
pub mod gpu;

pub use error::{Result, SpinError};
pub mod data;
pub mod experiments;
pub mod io;
pub mod nn;
pub mod operators;
pub mod spin;

#[cfg(test)]
mod doc_references;
