//! The WGSL kernels, registered in one place. Each is `shaders/common.wgsl` followed by its own
//! file; entry points are named after the kernel.

use std::sync::Arc;

use crate::error::{Result, SpinError};
use crate::gpu::mirror::{Mirror, Mirrors};
use crate::gpu::GpuContext;

macro_rules! kernels {
    ($($variant:ident => $name:literal $(in $dir:literal)?, $stage:literal;)*) => {
        /// A WGSL kernel family (one file in `shaders/`, or in `shaders/generated/` for the
        /// register-tiled kernels expanded from `shaders/templates/`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $(
                #[doc = concat!("`shaders/", $($dir, "/",)? $name, ".wgsl`, dispatched by ", $stage, ".")]
                $variant,
            )*
        }

        impl Kernel {
            /// Every kernel, for validation tests.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// The kernel's name (its file stem and entry point).
            pub fn name(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $name,)*
                }
            }

            /// The engine stage that dispatches it (see docs/architecture.md).
            pub fn stage(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $stage,)*
                }
            }

            /// Whether the file is generated from a template (`shaders/generated/`).
            pub fn generated(self) -> bool {
                match self {
                    $(Kernel::$variant => false $(|| $dir == "generated")?,)*
                }
            }

            /// The full WGSL source: the shared header followed by the kernel's file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        include_str!("../../shaders/common.wgsl"),
                        "\n",
                        include_str!(concat!("../../shaders/", $($dir, "/",)? $name, ".wgsl"))
                    ),)*
                }
            }
        }
    };
}

// Stages: statistics = stage 1 (submit A, `engine/statistics.rs`); Π-VJP = stage 2 (submit B,
// `engine/pi_vjp.rs`); Σ-Jacobian = stage 3 (β < 1 only, `engine/sigma_jacobian.rs`).
kernels! {
    DenseForward => "dense_forward" in "generated", "statistics (each dense layer's forward pass)";
    DenseForwardShared => "dense_forward_shared" in "generated", "statistics (each dense layer's forward pass, weights shared by subgroups of 8 lanes)";
    Envelope => "apply_envelope", "statistics (the box envelope)";
    DenseBackward => "dense_backward" in "generated", "Π-VJP and Σ-Jacobian (a dense layer's input VJP and sensitivities)";
    DenseBackwardShared => "dense_backward_shared" in "generated", "Π-VJP and Σ-Jacobian (a dense layer's input VJP and sensitivities, weights shared by subgroups of 8 lanes)";
    ParamGrad => "param_grad" in "generated", "Π-VJP (a dense layer's parameter gradient)";
    ParamGradWide => "param_grad_wide" in "generated", "Π-VJP (a dense layer's parameter gradient, 2 × 2 tiles for a single-threaded CPU adapter)";
    ParamGradShared => "param_grad_shared" in "generated", "Π-VJP (a dense layer's parameter gradient, input quads shared by subgroups of 8 lanes)";
    GradReduce => "grad_reduce", "Π-VJP (the split-K parameter gradient's sum)";
    SensInit => "sens_init", "Σ-Jacobian (the N sensitivity passes' seeds)";
    JbarUpdate => "jbar_update" in "generated", "Σ-Jacobian (a dense layer's Ĵ fused with J̄'s update)";
    JbarFactored => "jbar_factored" in "generated", "Σ-Jacobian (Ĵ of the dense layer below a dense read-out: N GEMMs, fused with J̄'s update)";
    FactorScale => "factor_scale", "Σ-Jacobian (g·act'(z) of the layer below a dense read-out, for jbar_factored)";
    JbarUpdateShared => "jbar_update_shared" in "generated", "Σ-Jacobian (jbar_update with samples shared by subgroups of 8 lanes)";
    JbarFactoredShared => "jbar_factored_shared" in "generated", "Σ-Jacobian (jbar_factored with samples shared by subgroups of 8 lanes)";
    JbarContract => "jbar_contract", "Σ-Jacobian (Σ_{j≤k} (G_Σ)_jk J̄[j,k,:] into the gradient)";
    TangentAct => "tangent_act", "statistics (softplus on forward-mode tangents)";
    TangentActBackward => "tangent_act_backward", "Π-VJP (the tangent activation's reverse mode)";
    TangentEnvelope => "tangent_envelope", "statistics (the envelope on tangent rows)";
    TangentEnvelopeBackward => "tangent_envelope_backward", "Π-VJP (the tangent envelope's reverse mode)";
    OperatorApply => "operator_apply", "statistics (the operator's gathers X and Y)";
    PairCotangent => "pair_cotangent", "Π-VJP (the covariance rule's cotangents of X and Y, per pair)";
    OperatorBackward => "operator_backward", "Π-VJP (the covariance rule's cotangents through the gathers)";
    StatsPartial => "stats_partial", "statistics (Σ̂ and Π̂, first reduction)";
    StatsFinal => "stats_final", "statistics (Σ̂ and Π̂, final reduction)";
    Conv2dForward => "conv2d_forward" in "generated", "statistics (each conv layer's forward pass)";
    Conv2dBackward => "conv2d_backward" in "generated", "Π-VJP and Σ-Jacobian (a conv layer's input VJP and sensitivities)";
    Conv2dParamGrad => "conv2d_param_grad", "Π-VJP (a conv layer's parameter gradient)";
    Conv2dSampleGrads => "conv2d_sample_grads", "Σ-Jacobian (per-sample, per-output conv weight gradients)";
    JbarSamples => "jbar_samples", "Σ-Jacobian (a conv layer's Ĵ from per-sample gradients)";
    Exchange => "exchange", "statistics and Π-VJP (exchange-symmetrised outputs and their transpose)";
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
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    );
    validator
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    validator.validate(&module).map_err(|e| SpinError::Shader {
        kernel: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    Ok(())
}

/// How a kernel uses one of its bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`: the dispatch writes the buffer.
    ReadWrite,
    /// `texture_2d<f32>`: the buffer is read through its texture mirror ([`crate::gpu::mirror`]).
    Texture,
    /// `texture_2d<u32>`: the buffer (indices, or records that mix indices and floats) is read
    /// through an `rgba32uint` mirror, so that no integer passes through a float register.
    UintTexture,
}

/// One `@group(0) @binding(i)` of a kernel.
#[derive(Clone, Debug)]
pub struct BindingInfo {
    /// The WGSL variable name, by which dispatches name their buffers.
    pub name: String,
    /// The binding number.
    pub binding: u32,
    /// How the kernel uses it.
    pub access: Access,
}

impl Kernel {
    /// The kernel's bindings by name (`@group(0) @binding(i) var… name`), read from its WGSL
    /// with naga once and cached: dispatches bind buffers by these names, so a renamed or
    /// reordered binding is an error at build time, not a silent mix-up.
    pub fn bindings(self) -> Result<Vec<BindingInfo>> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        type Cache = Mutex<HashMap<Kernel, Vec<BindingInfo>>>;
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
        let mut out: Vec<BindingInfo> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| {
                let access = match (&v.space, &module.types[v.ty].inner) {
                    (
                        _,
                        naga::TypeInner::Image {
                            class:
                                naga::ImageClass::Sampled {
                                    kind: naga::ScalarKind::Uint,
                                    ..
                                },
                            ..
                        },
                    ) => Access::UintTexture,
                    (_, naga::TypeInner::Image { .. }) => Access::Texture,
                    (naga::AddressSpace::Storage { access }, _)
                        if access.contains(naga::StorageAccess::STORE) =>
                    {
                        Access::ReadWrite
                    }
                    _ => Access::Read,
                };
                Some(BindingInfo {
                    name: v.name.clone()?,
                    binding: v.binding.as_ref()?.binding,
                    access,
                })
            })
            .collect();
        out.sort_by_key(|b| b.binding);
        if let Ok(mut c) = cache.lock() {
            c.insert(self, out.clone());
        }
        Ok(out)
    }

    /// Orders named buffers by the kernel's binding numbers; every binding must be given once.
    pub fn order_bindings<'a>(
        self,
        named: &[(&str, &'a wgpu::Buffer)],
    ) -> Result<Vec<(&'a wgpu::Buffer, BindingInfo)>> {
        let bindings = self.bindings()?;
        let mut out = Vec::with_capacity(bindings.len());
        for (i, info) in bindings.into_iter().enumerate() {
            if info.binding as usize != i {
                return Err(SpinError::Shader {
                    kernel: self.name().into(),
                    message: format!(
                        "bindings must be numbered 0, 1, …; `{}` is {}",
                        info.name, info.binding
                    ),
                });
            }
            let buf =
                named
                    .iter()
                    .find(|(n, _)| *n == info.name)
                    .ok_or_else(|| SpinError::Shader {
                        kernel: self.name().into(),
                        message: format!("no buffer given for binding `{}`", info.name),
                    })?;
            out.push((buf.1, info));
        }
        if let Some((extra, _)) = named
            .iter()
            .find(|(n, _)| !out.iter().any(|(_, b)| b.name == *n))
        {
            return Err(SpinError::Shader {
                kernel: self.name().into(),
                message: format!("the kernel has no binding `{extra}`"),
            });
        }
        Ok(out)
    }

    /// A bind group for `pipeline` (compiled from this kernel) with the named buffers; buffers
    /// the kernel reads as textures are bound through their mirrors in `mirrors`.
    pub fn bind(
        self,
        ctx: &GpuContext,
        mirrors: &Mirrors,
        pipeline: &wgpu::ComputePipeline,
        named: &[(&str, &wgpu::Buffer)],
        label: &str,
    ) -> Result<Bound> {
        let ordered = self.order_bindings(named)?;
        let mut textures = Vec::new();
        let mut writes = Vec::new();
        for (buf, info) in &ordered {
            match info.access {
                Access::Texture | Access::UintTexture => {
                    let uint = info.access == Access::UintTexture;
                    let m = mirrors.of(ctx, &info.name, buf, uint)?;
                    textures.push(((*buf).clone(), m));
                }
                Access::ReadWrite => writes.push((*buf).clone()),
                Access::Read => {}
            }
        }
        let layout = pipeline.get_bind_group_layout(0);
        let mut t = textures.iter();
        let entries: Vec<_> = ordered
            .iter()
            .map(|(buf, info)| wgpu::BindGroupEntry {
                binding: info.binding,
                resource: match info.access {
                    Access::Texture | Access::UintTexture => wgpu::BindingResource::TextureView(
                        t.next().expect("one mirror per texture binding").1.view(),
                    ),
                    _ => buf.as_entire_binding(),
                },
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &layout,
            entries: &entries,
        });
        Ok(Bound {
            bind_group,
            textures,
            writes,
        })
    }
}

/// A kernel's bind group with what it reads through mirrors and what it writes.
pub struct Bound {
    /// The bind group.
    pub bind_group: wgpu::BindGroup,
    /// Buffers read as textures, with their mirrors.
    pub textures: Vec<(wgpu::Buffer, Arc<Mirror>)>,
    /// Buffers written.
    pub writes: Vec<wgpu::Buffer>,
}
