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
    Conv2dForward => "conv2d_forward.wgsl",
    Conv2dBackward => "conv2d_backward.wgsl",
    Conv2dParamGrad => "conv2d_param_grad.wgsl",
    Conv2dSampleGrads => "conv2d_sample_grads.wgsl",
    JbarSamples => "jbar_samples.wgsl",
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

impl Kernel {
    /// The kernel's storage bindings by name (`@group(0) @binding(i) var<storage…> name`), read
    /// from its WGSL with naga once and cached: dispatches bind buffers by these names, so a
    /// renamed or reordered binding is an error at build time, not a silent mix-up.
    pub fn bindings(self) -> Result<Vec<(String, u32)>> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        type Cache = Mutex<HashMap<Kernel, Vec<(String, u32)>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(b) = cache.lock().ok().and_then(|c| c.get(&self).cloned()) {
            return Ok(b);
        }
        let module =
            naga::front::wgsl::parse_str(self.source()).map_err(|e| SpinError::Shader {
                kernel: self.name().to_string(),
                message: e.emit_to_string(self.source()),
            })?;
        let mut out: Vec<(String, u32)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| Some((v.name.clone()?, v.binding.as_ref()?.binding)))
            .collect();
        out.sort_by_key(|b| b.1);
        if let Ok(mut c) = cache.lock() {
            c.insert(self, out.clone());
        }
        Ok(out)
    }

    /// Orders named buffers by the kernel's binding numbers; every binding must be given once.
    pub fn order_bindings<'a>(
        self,
        named: &[(&str, &'a wgpu::Buffer)],
    ) -> Result<Vec<&'a wgpu::Buffer>> {
        let bindings = self.bindings()?;
        let mut out = Vec::with_capacity(bindings.len());
        for (i, (name, binding)) in bindings.iter().enumerate() {
            if *binding as usize != i {
                return Err(SpinError::Shader {
                    kernel: self.name().into(),
                    message: format!("bindings must be numbered 0, 1, …; `{name}` is {binding}"),
                });
            }
            let buf = named
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| SpinError::Shader {
                    kernel: self.name().into(),
                    message: format!("no buffer given for binding `{name}`"),
                })?;
            out.push(buf.1);
        }
        if let Some((extra, _)) = named
            .iter()
            .find(|(n, _)| !bindings.iter().any(|(b, _)| b == n))
        {
            return Err(SpinError::Shader {
                kernel: self.name().into(),
                message: format!("the kernel has no binding `{extra}`"),
            });
        }
        Ok(out)
    }
}
