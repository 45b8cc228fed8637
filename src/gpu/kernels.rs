//! The WGSL kernels, registered in one place. Each is `shaders/common.wgsl` followed by its own
//! file; entry points are named after the kernel.

use crate::error::{Result, SpinError};

macro_rules! kernels {
    ($($variant:ident => $file:literal),* $(,)?) => {
        /// A WGSL kernel family (one file in `shaders/`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $(
                #[doc = concat!("`shaders/", $file, "`")]
                $variant,
            )*
        }

        impl Kernel {
            /// Every kernel, for validation tests.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// The kernel's name (its file stem and entry point).
            pub fn name(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $file.trim_end_matches(".wgsl"),)*
                }
            }

            /// The full WGSL source: the shared header followed by the kernel's file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        include_str!("../../shaders/common.wgsl"),
                        "\n",
                        include_str!(concat!("../../shaders/", $file))
                    ),)*
                }
            }
        }
    };
}

kernels! {
    DenseForward => "dense_forward.wgsl",
    Envelope => "apply_envelope.wgsl",
    DenseBackward => "dense_backward.wgsl",
    ParamGrad => "param_grad.wgsl",
    SensInit => "sens_init.wgsl",
    JbarUpdate => "jbar_update.wgsl",
    JbarContract => "jbar_contract.wgsl",
    TangentAct => "tangent_act.wgsl",
    TangentActBackward => "tangent_act_backward.wgsl",
    TangentEnvelope => "tangent_envelope.wgsl",
    TangentEnvelopeBackward => "tangent_envelope_backward.wgsl",
    OperatorApply => "operator_apply.wgsl",
    OperatorBackward => "operator_backward.wgsl",
    StatsPartial => "stats_partial.wgsl",
    StatsFinal => "stats_final.wgsl",
}

impl Kernel {
    /// Parses and validates the kernel with naga, returning naga's message (which quotes the
    /// offending source) under the kernel's name.
    pub fn validate(self) -> Result<()> {
        validate_wgsl(self.name(), self.source())
    }
}

/// Parses and validates WGSL source with naga; errors carry `name` and naga's full report.
pub fn validate_wgsl(name: &str, source: &str) -> Result<()> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| SpinError::Shader {
        kernel: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    );
    validator.validate(&module).map_err(|e| SpinError::Shader {
        kernel: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    Ok(())
}
