//! The wgpu device: adapter choice, the adapter's own limits, buffers and kernels.

pub(crate) mod ids;
pub mod kernels;
pub(crate) mod ops;
pub mod residency;

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What kind of adapter a device runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    /// A discrete GPU.
    Discrete,
    /// An integrated GPU (shares memory with the host).
    Integrated,
    /// A virtualized GPU.
    Virtual,
    /// A software rasterizer (lavapipe, WARP, SwiftShader): correct but slow.
    Software,
    /// Unknown.
    Other,
}

impl AdapterKind {
    fn of(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
            wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
            wgpu::DeviceType::Cpu => AdapterKind::Software,
            wgpu::DeviceType::Other => AdapterKind::Other,
        }
    }

    /// Preference order: discrete, integrated, virtual, other, software.
    fn rank(self) -> u8 {
        match self {
            AdapterKind::Discrete => 0,
            AdapterKind::Integrated => 1,
            AdapterKind::Virtual => 2,
            AdapterKind::Other => 3,
            AdapterKind::Software => 4,
        }
    }
}

/// A wgpu device and queue with the adapter's limits. Cheap to clone (handles are shared).
#[derive(Clone)]
pub struct Device {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter information (name, backend, driver).
    pub info: wgpu::AdapterInfo,
    /// The limits requested: the adapter's own.
    pub limits: wgpu::Limits,
    /// Adapter kind.
    pub kind: AdapterKind,
    /// Features enabled on the device.
    pub features: wgpu::Features,
    /// The most loop iterations one shader invocation may run in all, where the driver caps
    /// them: Mesa's llvmpipe (lavapipe) ends every loop of an invocation after 65,535
    /// iterations shared between its loops (`LP_MAX_TGSI_LOOP_ITERATIONS`), without an error.
    /// Kernels whose loops could run longer split their work or refuse by name.
    pub loop_cap: Option<u64>,
    pipelines: Arc<Mutex<HashMap<kernels::Kernel, wgpu::ComputePipeline>>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Keep Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` from probing for a
/// display where none can be reached. The layer only orders adapters by the display's GPU
/// (layercake orders them itself, by kind, and honours `LAYERCAKE_ADAPTER`), but on a machine
/// without a session (`XDG_RUNTIME_DIR` unset or not a directory) its Wayland probe prints
/// `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on every instance, which
/// reads as a failure. Sets the layer's own off switch, `NODEVICE_SELECT=1`, in exactly that
/// case, and leaves the environment alone where a user chose a device through the layer
/// (`MESA_VK_DEVICE_SELECT`) or already set the switch.
///
/// It changes the process environment, so call it first thing in `main`, before any thread
/// starts (the `layercake` command line does).
pub fn quiet_display_probe() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    let chosen = std::env::var_os("MESA_VK_DEVICE_SELECT").is_some()
        || std::env::var_os("NODEVICE_SELECT").is_some();
    if !session && !chosen {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn backends_from_env() -> Result<wgpu::Backends> {
    match std::env::var("LAYERCAKE_BACKEND").ok().as_deref() {
        None | Some("") => Ok(wgpu::Backends::all()),
        Some("vulkan") => Ok(wgpu::Backends::VULKAN),
        Some("metal") => Ok(wgpu::Backends::METAL),
        Some("dx12") => Ok(wgpu::Backends::DX12),
        Some("gl") => Ok(wgpu::Backends::GL),
        Some(other) => Err(Error::Usage(format!(
            "LAYERCAKE_BACKEND={other}: expected vulkan, metal, dx12 or gl"
        ))),
    }
}

impl Device {
    /// Open the best adapter (discrete, then integrated, …, then software), or the one whose
    /// name contains `LAYERCAKE_ADAPTER`, on the backends `LAYERCAKE_BACKEND` allows. Requests
    /// the adapter's own limits, not wgpu's defaults.
    pub fn open() -> Result<Device> {
        let backends = backends_from_env()?;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let wanted = std::env::var("LAYERCAKE_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        if let Some(w) = &wanted {
            let w = w.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w));
        }
        adapters.sort_by_key(|a| AdapterKind::of(a.get_info().device_type).rank());
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            Error::Gpu(match wanted {
                Some(w) => format!("no adapter's name contains LAYERCAKE_ADAPTER={w}"),
                None => "no GPU adapter found (on Debian, `apt-get install mesa-vulkan-drivers` provides lavapipe)".into(),
            })
        })?;
        Self::from_adapter(adapter)
    }

    fn from_adapter(adapter: wgpu::Adapter) -> Result<Device> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let kind = AdapterKind::of(info.device_type);
        // Where the GPU shares memory with the host, mappable storage buffers let weights be
        // written into (and read from) the buffers themselves: no staging copy.
        let shared_memory = kind != AdapterKind::Discrete;
        let features = if shared_memory {
            adapter.features() & wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
        } else {
            wgpu::Features::empty()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("layercake"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("{}: request_device failed: {e}", info.name)))?;
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("layercake: uncaptured GPU error: {e}");
        }));
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = flag.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        let loop_cap = info
            .name
            .to_lowercase()
            .contains("llvmpipe")
            .then_some(65_535);
        Ok(Device {
            device,
            queue,
            info,
            limits,
            kind,
            features,
            loop_cap,
            pipelines: Arc::default(),
            lost,
        })
    }

    /// `Ok` when one invocation of `kernel` looping `iterations` times in all stays within
    /// [`Device::loop_cap`]; else an error naming the kernel and the cap (a driver that cut the
    /// loops short would return a wrong number).
    pub fn check_loops(&self, kernel: &str, iterations: u64) -> Result<()> {
        match self.loop_cap {
            Some(cap) if iterations > cap => Err(Error::Gpu(format!(
                "kernel '{kernel}' would loop {iterations} times in one invocation, above this adapter's cap of {cap} loop iterations ({} ends longer loops early); run it on the CPU",
                self.info.name
            ))),
            _ => Ok(()),
        }
    }

    /// True when storage buffers can be mapped directly (shared-memory adapters).
    pub fn mappable_primary(&self) -> bool {
        self.features
            .contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS)
    }

    /// Open a hardware adapter (discrete, integrated or virtual GPU), `Ok(None)` when only
    /// software adapters (or none) exist.
    pub fn open_hardware() -> Result<Option<Device>> {
        match Device::open() {
            Ok(d) if d.kind != AdapterKind::Software => Ok(Some(d)),
            Ok(_) => Ok(None),
            Err(Error::Gpu(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A buffer holding `bytes` (zero-padded to a multiple of 4, at least 4), created unmapped
    /// and filled through the queue: on a lost device this becomes an error at the next check,
    /// never a panic (wgpu's `create_buffer_init` panics when it cannot map a fresh buffer).
    pub fn buffer_with(
        &self,
        label: &str,
        bytes: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let size = (bytes.len() as u64).next_multiple_of(4).max(4);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if bytes.len() as u64 == size {
            self.queue.write_buffer(&buffer, 0, bytes);
        } else if !bytes.is_empty() {
            let mut padded = bytes.to_vec();
            padded.resize(size as usize, 0);
            self.queue.write_buffer(&buffer, 0, &padded);
        }
        buffer
    }

    /// An error when the device has been lost (driver reset, GPU removed, destroyed). Checked
    /// before any work that creates resources: wgpu's helpers panic on a lost device.
    pub fn check_lost(&self) -> Result<()> {
        // A non-blocking poll runs a pending device-lost callback.
        let _ = self.device.poll(wgpu::PollType::Poll);
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(reason) => Err(Error::Gpu(format!(
                "{}: device lost ({reason})",
                self.info.name
            ))),
            None => Ok(()),
        }
    }

    /// One line: adapter, backend, driver and the limits that matter.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {}); max buffer {} B, max storage binding {} B, workgroup storage {} B, mappable storage buffers: {}",
            self.info.name,
            self.kind,
            self.info.backend,
            self.info.driver,
            self.info.driver_info,
            self.limits.max_buffer_size,
            self.limits.max_storage_buffer_binding_size,
            self.limits.max_compute_workgroup_storage_size,
            if self.mappable_primary() { "yes" } else { "no" },
        )
    }

    /// Run `f` inside validation and out-of-memory error scopes; a captured error becomes an
    /// [`Error::Gpu`] naming `what`.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        match v.or(o) {
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
            None => Ok(value),
        }
    }

    /// Wait for all submitted work; a lost device is an error.
    pub fn wait(&self) -> Result<()> {
        self.check_lost()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.check_lost()
    }

    /// Map `(buffer, length)` pairs for reading with one wait: every `map_async` first, then one
    /// poll, then each result checked (`what` names them in errors). Views over `0..length`.
    pub fn map_read(
        &self,
        what: &str,
        buffers: &[(&wgpu::Buffer, u64)],
    ) -> Result<Vec<wgpu::BufferView>> {
        let (tx, rx) = std::sync::mpsc::channel();
        for (k, (buffer, len)) in buffers.iter().enumerate() {
            let tx = tx.clone();
            buffer.map_async(wgpu::MapMode::Read, 0..*len, move |r| {
                let _ = tx.send((k, r));
            });
        }
        drop(tx);
        self.wait()?;
        let mut seen = 0;
        for (k, r) in rx.iter() {
            r.map_err(|e| Error::Gpu(format!("mapping {what} ({k}) for reading: {e}")))?;
            seen += 1;
        }
        if seen != buffers.len() {
            return Err(Error::Gpu(format!(
                "mapping {what}: {} of {} mappings never completed",
                buffers.len() - seen,
                buffers.len()
            )));
        }
        buffers
            .iter()
            .map(|(b, len)| {
                b.get_mapped_range(0..*len)
                    .map_err(|e| Error::Gpu(format!("reading {what}: {e}")))
            })
            .collect()
    }

    /// Copy `src` (a COPY_SRC buffer) back to the host.
    pub fn read_back(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let staging = self.checked("allocating a readback buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let bytes = self
            .map_read("the readback buffer", &[(&staging, size)])?
            .remove(0)
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }

    /// Compute `a * x + b` on the device: the smoke test that proves this adapter computes.
    pub fn axpy(&self, x: &[f32], a: f32, b: f32) -> Result<Vec<f32>> {
        let n =
            u32::try_from(x.len()).map_err(|_| Error::Usage("axpy: too many elements".into()))?;
        let bytes = (x.len().max(1) * 4) as u64;
        let params = kernels::AxpyParams { n, a, b, pad: 0 };
        let pipeline = self.pipeline(kernels::AXPY)?;
        let (uniform, input, output) = self.checked("allocating axpy buffers", || {
            let uniform = self.buffer_with(
                "axpy params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            );
            let mut padded = bytemuck::cast_slice::<f32, u8>(x).to_vec();
            padded.resize(bytes as usize, 0);
            let input = self.buffer_with("axpy x", &padded, wgpu::BufferUsages::STORAGE);
            let output = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("axpy y"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (uniform, input, output)
        })?;
        let resources = [
            uniform.as_entire_binding(),
            input.as_entire_binding(),
            output.as_entire_binding(),
        ];
        let group = self.bind_group(&pipeline, "axpy", &resources);
        let (gx, gy) = kernels::grid_for(n, self.limits.max_compute_workgroups_per_dimension);
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        self.queue.submit([enc.finish()]);
        let out = self.read_back(&output, bytes)?;
        Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&out)[..x.len()].to_vec())
    }

    /// A bind group for `pipeline`'s group 0 with `resources` at bindings 0, 1, 2, … in order.
    pub fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        label: &str,
        resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// The compute pipeline of `kernel` (entry point `main`), built once per device and cached;
    /// shader errors are `Err`.
    pub fn pipeline(&self, kernel: kernels::Kernel) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self
            .pipelines
            .lock()
            .ok()
            .and_then(|m| m.get(&kernel).cloned())
        {
            return Ok(p);
        }
        let pipeline = self.build_pipeline(kernel)?;
        if let Ok(mut m) = self.pipelines.lock() {
            m.insert(kernel, pipeline.clone());
        }
        Ok(pipeline)
    }

    fn build_pipeline(&self, kernel: kernels::Kernel) -> Result<wgpu::ComputePipeline> {
        self.checked(&format!("compiling shaders/{}.wgsl", kernel.name), || {
            // SAFETY: the only check relaxed is naga's loop bounding (a counter added to every
            // loop so that a non-terminating one cannot hang the driver). Every loop in
            // shaders/ is a `for` over a counter bounded by a constant or a uniform and never
            // written in its body, so each terminates; `tests/shaders.rs` enforces that shape.
            // Buffer and index bounds checks stay on. On lavapipe the loop counters cost ~40%
            // of the matmul's time (0.84 → 1.45 GFLOP/s at 1024³).
            let module = unsafe {
                self.device.create_shader_module_trusted(
                    wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.name),
                        source: wgpu::ShaderSource::Wgsl(kernel.module_source().into()),
                    },
                    kernels::RUNTIME_CHECKS,
                )
            };
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.name),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })
    }
}
