//! Experiments built on the SpIN trainer.

pub mod bench;
pub mod graph;
pub mod grid;
pub mod guard;
pub mod krylov;
pub mod matrix;
pub mod plot;
pub mod progress;
pub mod readout;
pub mod report;
pub mod schrodinger;
pub mod sfa;
pub mod suite;
pub mod training;
pub mod video;
