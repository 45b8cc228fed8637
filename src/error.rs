//! The library's error type.

use thiserror::Error;

/// Everything that can go wrong in the library, with enough context to act on.
#[derive(Debug, Error)]
pub enum SpinError {
    /// No adapter matched the request.
    #[error("no GPU adapter found{0}. On Linux without a GPU install Mesa's software Vulkan driver: `apt-get install mesa-vulkan-drivers libvulkan1` (it provides the `llvmpipe` adapter)")]
    NoAdapter(String),
    /// The adapter refused the device request.
    #[error("requesting a device from adapter `{adapter}` failed: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's complaint.
        #[source]
        source: wgpu::RequestDeviceError,
    },
    /// A WGSL kernel failed to compile or validate.
    #[error("kernel `{kernel}` failed to compile or validate: {message}")]
    Shader {
        /// The kernel's name.
        kernel: String,
        /// The compiler's or validator's message.
        message: String,
    },
    /// A GPU operation raised a validation or out-of-memory error.
    #[error("GPU error in `{context}`: {message}")]
    Gpu {
        /// What was being done.
        context: String,
        /// wgpu's message.
        message: String,
    },
    /// The device was lost (driver reset, GPU removed, ...).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// Shapes or sizes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A configuration value that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The moving average of Σ is not positive definite.
    #[error("Σ̄ is not positive definite: feature {feature} has collapsed (its Cholesky pivot is {pivot:.3e}); the network's outputs 0..={feature} are linearly dependent on the samples. Try a smaller learning rate, a larger batch or a different seed")]
    Cholesky {
        /// The first feature (0-based) whose pivot failed.
        feature: usize,
        /// The failing pivot value.
        pivot: f64,
    },
    /// A loss, statistic or gradient became NaN or infinite.
    #[error("non-finite value in {what} at step {step}; the run was stopped and the last good state kept")]
    NonFinite {
        /// Which quantity.
        what: String,
        /// The step at which it happened.
        step: u64,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The workers of a data-parallel run disagree or their transport failed.
    #[error("data-parallel run: {0}")]
    Parallel(String),
    /// A data file could not be parsed.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong and where.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = SpinError> = std::result::Result<T, E>;
