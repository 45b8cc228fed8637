//! The SpIN step: the GPU engine, the host's matrix work, optimisers and the trainer.

pub mod checkpoint;
pub mod engine;
pub mod host;
pub mod objective;
pub mod optim;
pub mod oracle;
pub mod parallel;
pub mod successors;
pub mod trainer;

pub use engine::{Engine, EngineOptions, Probe, SigmaGradient, StepScalars};
pub use objective::Objective;
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
pub use trainer::{Evaluation, PhaseTimes, Problem, StepReport, StepTrace, TrainConfig, Trainer};
