//! Experiments built on the SpIN trainer.

pub mod matrix;
