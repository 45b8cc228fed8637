//! Adapter selection, device creation, the pipeline cache and buffer helpers.
//!
//! Everything that talks to wgpu's instance/adapter/device lives here, so that kernels and the
//! SpIN engine only see a [`GpuContext`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Result, SpinError};
use crate::gpu::kernels::Kernel;

/// Which graphics API to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// Vulkan (Linux, Windows, Android; Mesa lavapipe for a CPU adapter).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES.
    Gl,
}

impl std::str::FromStr for BackendChoice {
    type Err = SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "metal" | "mtl" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            "gl" | "gles" | "opengl" => Ok(Self::Gl),
            other => Err(SpinError::Config(format!(
                "unknown backend `{other}` (expected vulkan, metal, dx12 or gl)"
            ))),
        }
    }
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
            Self::Gl => wgpu::Backends::GL,
        }
    }
}

/// How to choose the adapter. The default picks the best one (a discrete GPU over an integrated
/// one over a CPU adapter).
#[derive(Clone, Debug, Default)]
pub struct AdapterRequest {
    /// Only adapters whose name contains this (case-insensitive).
    pub name_contains: Option<String>,
    /// Only this backend; `None` honours `WGPU_BACKEND` and otherwise allows all.
    pub backend: Option<BackendChoice>,
    /// Only software/CPU adapters (e.g. Mesa lavapipe, WARP).
    pub software: bool,
    /// Of the adapters that match (best first), take number `index` modulo their count: a
    /// data-parallel rank's local rank, so that the ranks on one node spread over its GPUs.
    pub index: usize,
}

/// A short description of an adapter, for `spin info` and for metrics files.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend, e.g. `Vulkan`.
    pub backend: String,
    /// Discrete / integrated / CPU / virtual / other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Maximum bytes in one storage-buffer binding.
    pub max_storage_buffer_binding_size: u64,
    /// Maximum buffer size.
    pub max_buffer_size: u64,
    /// Maximum invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Maximum workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Maximum storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Whether timestamp queries (per-kernel timing) are available.
    pub timestamp_queries: bool,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        Self {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            timestamp_queries: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

/// Whether the program should set `NODEVICE_SELECT=1` for itself, given the values of
/// `NODEVICE_SELECT` and `SPIN_DEVICE_SELECT`: only when the user has set neither.
pub fn should_quiet_device_select(nodevice: Option<&str>, keep: Option<&str>) -> bool {
    nodevice.is_none() && keep.is_none_or(|v| v.is_empty() || v == "0")
}

/// Quiets Mesa's device-select Vulkan layer, which prints `error: XDG_RUNTIME_DIR is invalid or
/// not set in the environment.` on headless machines although nothing failed: sets
/// `NODEVICE_SELECT=1` before the first wgpu instance exists, unless the user set
/// `NODEVICE_SELECT` (any value is theirs to keep) or asked for the layer with
/// `SPIN_DEVICE_SELECT=1`. Returns whether it set the variable.
pub fn quiet_device_select() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        let nodevice = std::env::var("NODEVICE_SELECT").ok();
        let keep = std::env::var("SPIN_DEVICE_SELECT").ok();
        let quiet = should_quiet_device_select(nodevice.as_deref(), keep.as_deref());
        if quiet {
            // Before any wgpu instance (and so before Vulkan loads the layer).
            std::env::set_var("NODEVICE_SELECT", "1");
        }
        quiet
    })
}

/// Sets the driver environment before the first wgpu instance exists: quiets the
/// device-select layer ([`quiet_device_select`]) and gives lavapipe [`lavapipe_threads`]
/// threads when `LP_NUM_THREADS` is unset. Call it while the program has one thread.
pub fn driver_environment() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        quiet_device_select();
        let _ = LP_THREADS_FROM_USER.set(std::env::var_os("LP_NUM_THREADS").is_some());
        if std::env::var_os("LP_NUM_THREADS").is_none() {
            std::env::set_var("LP_NUM_THREADS", lavapipe_threads().to_string());
        }
    });
}

static LP_THREADS_FROM_USER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether `LP_NUM_THREADS` was set before [`driver_environment`] ran (by the user, or by a
/// launcher): then it is left as it is, for workers too.
pub fn lavapipe_threads_set_by_user() -> bool {
    LP_THREADS_FROM_USER
        .get()
        .copied()
        .unwrap_or_else(|| std::env::var_os("LP_NUM_THREADS").is_some())
}

/// Whether lavapipe runs every dispatch on the submitting thread (`LP_NUM_THREADS=0`, as
/// `--workers` sets it for its worker processes).
pub fn lavapipe_single_threaded() -> bool {
    std::env::var("LP_NUM_THREADS").is_ok_and(|v| v.trim() == "0")
}

/// The thread count given to lavapipe (Mesa's `LP_NUM_THREADS`, read when Vulkan first
/// enumerates devices) unless the user set one: twice the CPU count, at most 16. Our dispatches
/// have few workgroups (a batch of 128 is a handful of 64-invocation groups), so two threads per
/// core even out their uneven shares (measured: docs/results/speed.md).
pub fn lavapipe_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cpus).clamp(2, 16)
}

fn instance_for(backend: Option<BackendChoice>) -> wgpu::Instance {
    driver_environment();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = match backend {
        Some(b) => b.backends(),
        None => wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
    };
    wgpu::Instance::new(desc)
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// All adapters the request's backend filter allows, best first.
pub fn list_adapters(req: &AdapterRequest) -> Vec<AdapterSummary> {
    candidate_adapters(req)
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

/// The adapter [`GpuContext::new`] would open for `req`, without opening it; `None` when there
/// is none.
pub fn chosen_adapter(req: &AdapterRequest) -> Option<AdapterSummary> {
    let adapters = candidate_adapters(req);
    let pick = req.index % adapters.len().max(1);
    adapters.get(pick).map(AdapterSummary::of)
}

fn candidate_adapters(req: &AdapterRequest) -> Vec<wgpu::Adapter> {
    let instance = instance_for(req.backend);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.retain(|a| {
        let info = a.get_info();
        let name_ok = req
            .name_contains
            .as_ref()
            .is_none_or(|s| info.name.to_lowercase().contains(&s.to_lowercase()));
        let soft_ok = !req.software || info.device_type == wgpu::DeviceType::Cpu;
        name_ok && soft_ok
    });
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (type_rank(info.device_type), backend_rank(info.backend))
    });
    adapters
}

/// Key of the pipeline cache: kernel, entry point and specialisation constants (as bit patterns).
type PipelineKey = (Kernel, &'static str, Vec<(&'static str, u64)>);

/// Owns the adapter, device, queue and the cache of compiled pipelines. Kernels take `&GpuContext`.
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// The wgpu queue.
    pub queue: wgpu::Queue,
    summary: AdapterSummary,
    timestamps: bool,
    shared_lanes: bool,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<String>>,
    uncaptured: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.summary.name)
            .finish()
    }
}

/// Opens the best adapter allowed by `SPIN_ADAPTER`/`WGPU_BACKEND`-style environment settings:
/// `SPIN_SOFTWARE=1` forces the CPU adapter, `SPIN_ADAPTER=substring` filters by name.
pub fn request_from_env() -> AdapterRequest {
    AdapterRequest {
        name_contains: std::env::var("SPIN_ADAPTER").ok().filter(|s| !s.is_empty()),
        backend: None,
        software: std::env::var("SPIN_SOFTWARE").is_ok_and(|v| v == "1" || v == "true"),
        index: 0,
    }
}

impl GpuContext {
    /// Opens the adapter chosen by `req` and creates a device with the adapter's own limits.
    pub fn new(req: &AdapterRequest) -> Result<Self> {
        let adapters = candidate_adapters(req);
        let pick = req.index % adapters.len().max(1);
        let Some(adapter) = adapters.into_iter().nth(pick) else {
            let mut what = String::new();
            if let Some(n) = &req.name_contains {
                what.push_str(&format!(" whose name contains `{n}`"));
            }
            if let Some(b) = req.backend {
                what.push_str(&format!(" on backend {b:?}"));
            }
            if req.software {
                what.push_str(" of software (CPU) type");
            }
            let others = list_adapters(&AdapterRequest::default());
            if !others.is_empty() && !what.is_empty() {
                let names: Vec<_> = others.iter().map(|a| a.name.clone()).collect();
                what.push_str(&format!(" (available: {})", names.join(", ")));
            }
            return Err(SpinError::NoAdapter(what));
        };
        let summary = AdapterSummary::of(&adapter);
        let timestamps = summary.timestamp_queries;
        let mut features = wgpu::Features::empty();
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        // Subgroup operations, for the kernels that share fetched data across a subgroup of
        // exactly `tiles::SHARED_LANES` lanes (lavapipe with 256-bit vectors).
        let info = adapter.get_info();
        let lanes = crate::gpu::tiles::SHARED_LANES as u32;
        let shared_lanes = adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == lanes
            && info.subgroup_max_size == lanes;
        if shared_lanes {
            features |= wgpu::Features::SUBGROUP;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("spin device"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            SpinError::RequestDevice {
                adapter: summary.name.clone(),
                source: e,
            }
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(String::new()));
        {
            let lost = lost.clone();
            let reason = lost_reason.clone();
            device.set_device_lost_callback(move |r, msg| {
                if let Ok(mut s) = reason.lock() {
                    *s = format!("{r:?}: {msg}");
                }
                lost.store(true, Ordering::SeqCst);
            });
        }
        let uncaptured = Arc::new(Mutex::new(None));
        {
            let slot = uncaptured.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut s) = slot.lock() {
                    if s.is_none() {
                        *s = Some(e.to_string());
                    }
                }
            }));
        }
        Ok(Self {
            device,
            queue,
            summary,
            timestamps,
            shared_lanes,
            pipelines: Mutex::new(HashMap::new()),
            lost,
            lost_reason,
            uncaptured,
        })
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Whether the subgroup-shared kernels can run: subgroup operations are enabled and every
    /// subgroup has exactly [`crate::gpu::tiles::SHARED_LANES`] lanes (lavapipe with 256-bit
    /// vectors; not GPUs, whose subgroups are wider).
    pub fn has_shared_lanes(&self) -> bool {
        self.shared_lanes
    }

    /// Whether the device has timestamp queries enabled.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    /// Returns an error if the device was lost or an uncaptured GPU error happened.
    pub fn check(&self, context: &str) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            let reason = self
                .lost_reason
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            return Err(SpinError::DeviceLost(reason));
        }
        if let Ok(mut slot) = self.uncaptured.lock() {
            if let Some(message) = slot.take() {
                return Err(SpinError::Gpu {
                    context: context.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// The compute pipeline for `kernel`'s `entry` point specialised with `constants`, compiled
    /// on first use. Compilation and validation errors name the kernel.
    pub fn pipeline(
        &self,
        kernel: Kernel,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key: PipelineKey = (
            kernel,
            entry,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        let mut cache = self.pipelines.lock().map_err(|_| SpinError::Gpu {
            context: "pipeline cache".into(),
            message: "poisoned lock".into(),
        })?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let label = format!("{}::{}", kernel.name(), entry);
        let pipeline = self.pipeline_from_source(&label, kernel.source(), entry, constants)?;
        let pipeline = Arc::new(pipeline);
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A pipeline compiled from WGSL source (a kernel, or WGSL generated at run time such as a
    /// user's potential), not cached. The source is validated with naga first, so errors quote
    /// it; the driver's own validation runs inside an error scope and is reported under `name`.
    pub fn pipeline_from_source(
        &self,
        name: &str,
        source: &str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        crate::gpu::kernels::validate_wgsl(name, source)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(SpinError::Shader {
                kernel: name.to_string(),
                message: err.to_string(),
            });
        }
        Ok(pipeline)
    }

    /// A storage buffer of `len` f32 (or u32) words, zero-initialised, rounded up to whole
    /// 16-byte texels so that it can have a texture mirror ([`crate::gpu::mirror`]).
    pub fn storage(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words.max(1).next_multiple_of(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data` (zero-padded to whole 16-byte texels).
    pub fn storage_from<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        if data.is_empty() {
            return self.storage(label, 1);
        }
        let mut bytes: Vec<u8> = bytemuck::cast_slice(data).to_vec();
        bytes.resize(bytes.len().next_multiple_of(16), 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// A buffer the host can map for reading, of `words` 4-byte words.
    pub fn staging(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A bind group for `pipeline`'s group 0 with `buffers` at bindings 0, 1, 2, ...
    pub fn bind(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &layout,
            entries: &entries,
        })
    }

    /// Blocks until all submitted work is done, then maps `staging` and returns its first
    /// `words` f32 values. Device loss and GPU errors become errors, not hangs.
    pub fn read_staging(&self, staging: &wgpu::Buffer, words: usize) -> Result<Vec<f32>> {
        let bytes = (words * 4) as u64;
        let slice = staging.slice(0..bytes.max(4));
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(std::time::Duration::from_secs(120)),
            })
            .map_err(|e| {
                if self.lost.load(Ordering::SeqCst) {
                    SpinError::DeviceLost(e.to_string())
                } else {
                    SpinError::Gpu {
                        context: "waiting for the GPU".into(),
                        message: e.to_string(),
                    }
                }
            })?;
        self.check("readback")?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(SpinError::Gpu {
                    context: "mapping a readback buffer".into(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(SpinError::Gpu {
                    context: "mapping a readback buffer".into(),
                    message: "the map callback never ran".into(),
                })
            }
        }
        let out = {
            let view = slice.get_mapped_range().map_err(|e| SpinError::Gpu {
                context: "reading a mapped buffer".into(),
                message: e.to_string(),
            })?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            all[..words].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Copies `words` f32 from `buffer` to the host (creates a staging buffer; for tests and
    /// one-off reads, not the training loop).
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, words: usize) -> Result<Vec<f32>> {
        let staging = self.staging("readback", words);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, (words.max(1) * 4) as u64);
        self.queue.submit([enc.finish()]);
        self.read_staging(&staging, words)
    }
}
