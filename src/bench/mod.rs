//! Save/load throughput, always beside this machine's own limits measured in the same run.
//!
//! Every figure is GB/s of weight bytes (10^9 bytes per second), as median and min–max over the
//! repeats. Load is files → every tensor resident on the device (device creation timed
//! separately); save is device → files, with and without fsync. The limits are: reading the same
//! files into freshly allocated memory and into a reused buffer, writing the same bytes from
//! memory with and without fsync, and memcpy; beside them, the xxh3 hash of the same bytes.

pub mod gpu_limits;
pub mod memory;
pub mod predict;

use crate::error::{Error, Result};
use crate::format::{self, Artifacts, SaveOptions};
use crate::gpu::residency::UploadOptions;
use crate::gpu::Device;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Median, minimum and maximum of repeated timings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// Median seconds.
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Stat {
    /// Summarize `samples` (seconds); zeros when empty.
    pub fn of(samples: &[f64]) -> Stat {
        let mut s: Vec<f64> = samples.to_vec();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            },
            n => Stat {
                median: if n % 2 == 1 {
                    s[n / 2]
                } else {
                    (s[n / 2 - 1] + s[n / 2]) / 2.0
                },
                min: s[0],
                max: s[n - 1],
            },
        }
    }
}

/// One measured row.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Timings.
    pub secs: Stat,
    /// Bytes moved per repeat.
    pub bytes: u64,
}

impl Row {
    /// Throughput at the median and its range, in GB/s (the fastest time gives the max).
    pub fn gbps(&self) -> (f64, f64, f64) {
        let r = |s: f64| self.bytes as f64 / s.max(1e-12) / 1e9;
        (r(self.secs.median), r(self.secs.max), r(self.secs.min))
    }

    fn json(&self) -> Value {
        let (med, lo, hi) = self.gbps();
        json!({"name": self.name, "bytes": self.bytes, "seconds": {"median": self.secs.median, "min": self.secs.min, "max": self.secs.max}, "gbps": {"median": med, "min": lo, "max": hi}})
    }
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Repeats per measurement.
    pub repeat: usize,
    /// Drop the model files from the page cache before each load (`posix_fadvise(DONTNEED)`).
    pub cold: bool,
    /// Where saves go (a directory beside the model by default).
    pub scratch: PathBuf,
}

/// A whole benchmark report.
#[derive(Clone, Debug)]
pub struct Report {
    /// Rows in order: load, its stages, saves, limits.
    pub rows: Vec<Row>,
    /// Peak resident memory a load added to the process (peak during the load minus the resident
    /// size before it), bytes; None where unavailable.
    pub peak_load_rss: Option<u64>,
    /// Model weight bytes.
    pub weight_bytes: u64,
    /// Tensors in the model.
    pub tensors: usize,
    /// Device description, or "CPU".
    pub device: String,
    /// Seconds to create the device (timed separately).
    pub device_secs: f64,
    /// Page cache state of the loads.
    pub cache: String,
}

impl Report {
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Ratio of two rows' median throughputs.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.row(a)?.gbps().0 / self.row(b)?.gbps().0)
    }

    /// The ratios the targets are stated in.
    pub fn ratios(&self) -> Vec<(String, Option<f64>)> {
        [
            (
                "load / read into fresh memory",
                "load",
                "limit: read into fresh memory",
            ),
            (
                "load / read into a reused buffer",
                "load",
                "limit: read into a reused buffer",
            ),
            (
                "save / write from memory (no fsync)",
                "save (no fsync)",
                "limit: write (no fsync)",
            ),
            (
                "save / write into reserved blocks",
                "save (no fsync)",
                "limit: write into reserved blocks (no fsync)",
            ),
            (
                "save+fsync / write+fsync",
                "save (fsync)",
                "limit: write (fsync)",
            ),
            (
                "upload / GPU write_buffer",
                "  stage: read + upload (one copy)",
                gpu_limits::WRITE_BUFFER,
            ),
            (
                "readback / GPU copy back + map",
                gpu_limits::READBACK,
                gpu_limits::COPY_BACK,
            ),
        ]
        .iter()
        .map(|(label, a, b)| (label.to_string(), self.ratio(a, b)))
        .collect()
    }

    /// JSON form.
    pub fn json(&self) -> Value {
        json!({
            "device": self.device,
            "device_creation_seconds": self.device_secs,
            "page_cache": self.cache,
            "weight_bytes": self.weight_bytes,
            "tensors": self.tensors,
            "peak_load_rss_bytes": self.peak_load_rss,
            "rows": self.rows.iter().map(Row::json).collect::<Vec<_>>(),
            "ratios": self.ratios().into_iter().map(|(k, v)| json!({"ratio": k, "value": v})).collect::<Vec<_>>(),
        })
    }

    /// A readable table.
    pub fn render(&self) -> String {
        let mut s = format!(
            "device      {}\n            (device creation {:.1} ms, timed separately)\nmodel       {} bytes in {} tensors; page cache {}\n\n{:<44} {:>9} {:>21}\n",
            self.device,
            self.device_secs * 1e3,
            self.weight_bytes,
            self.tensors,
            self.cache,
            "measurement",
            "GB/s",
            "(min–max)"
        );
        for r in &self.rows {
            let (med, lo, hi) = r.gbps();
            s.push_str(&format!("{:<44} {med:>9.3}   ({lo:.3}–{hi:.3})\n", r.name));
        }
        s.push_str("\nratios (median / median)\n");
        for (label, v) in self.ratios() {
            s.push_str(&format!(
                "  {label:<42} {}\n",
                v.map_or("-".into(), |v| format!("{v:.2}×"))
            ));
        }
        if let Some(p) = self.peak_load_rss {
            s.push_str(&format!(
                "\npeak memory a load adds: {:.1} MiB ({:.2}× the model; the target is at most the model + 64 MiB)\n",
                p as f64 / 1048576.0,
                p as f64 / self.weight_bytes.max(1) as f64
            ));
        }
        s
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The files holding `a`'s weights (the weight files of a TF.js model, the .safetensors, .keras
/// or .h5 file, or an unzipped .keras directory's weights file).
pub fn weight_files(a: &Artifacts) -> Vec<PathBuf> {
    match a.container {
        format::Container::Safetensors => vec![a.origin.clone()],
        format::Container::Keras if a.origin.is_dir() => {
            vec![a.origin.join(format::keras::WEIGHTS_H5)]
        }
        format::Container::Keras => vec![a.origin.clone()],
        format::Container::Tfjs => {
            let dir = a.origin.parent().unwrap_or(Path::new("."));
            a.spec
                .layout
                .groups
                .iter()
                .flat_map(|g| g.paths.iter().map(|p| dir.join(p)))
                .collect()
        }
    }
}

/// Drop `files` from the page cache. Returns false where that is not possible.
pub fn drop_from_cache(files: &[PathBuf]) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        files.iter().all(|f| {
            std::fs::File::open(f).is_ok_and(|file| {
                // SAFETY: a valid open descriptor; advice only.
                unsafe {
                    libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) == 0
                }
            })
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = files;
        false
    }
}

/// Peak resident set size of this process (VmHWM), bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Current resident set size of this process (VmRSS), bytes.
pub fn current_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak resident set size to the current one (Linux `clear_refs` 5).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Measure load and save of the model at `path` on `device` (None: the CPU path, where "load"
/// is opening the files and faulting in every weight byte).
pub fn run(
    path: &Path,
    device: Option<&Device>,
    device_secs: f64,
    opts: &Options,
) -> Result<Report> {
    let probe = format::open(path)?;
    let files = weight_files(&probe);
    let bytes = probe.spec.stored_bytes();
    let tensors = probe.spec.weights.len();
    drop(probe);
    let repeat = opts.repeat.max(1);
    let cold = opts.cold && drop_from_cache(&files);
    let mut load = Vec::new();
    let (mut parse, mut copy, mut dequant) = (Vec::new(), Vec::new(), Vec::new());
    let mut peak = None;
    for _ in 0..repeat {
        if cold {
            drop_from_cache(&files);
        }
        reset_peak_rss();
        let before = current_rss();
        let t = Instant::now();
        let a = format::open(path)?;
        parse.push(secs(t.elapsed()));
        match device {
            Some(dev) => {
                let gw = dev.upload(&a, &UploadOptions::default(), &mut |_, _| {})?;
                load.push(secs(t.elapsed()));
                copy.push(secs(gw.stats.copy));
                dequant.push(secs(gw.stats.dequantize));
            }
            None => {
                let sum: u64 = (0..a.spec.weights.len())
                    .flat_map(|i| {
                        a.store
                            .pieces(i)
                            .map(|p| p.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>())
                            .collect::<Vec<_>>()
                    })
                    .sum();
                std::hint::black_box(sum);
                load.push(secs(t.elapsed()));
            }
        }
        // Memory the load added: peak during the load minus what the process held before.
        let added = peak_rss().zip(before).map(|(p, b)| p.saturating_sub(b));
        peak = peak.max(added);
    }
    let mut rows = vec![
        Row {
            name: "load".into(),
            secs: Stat::of(&load),
            bytes,
        },
        Row {
            name: "  stage: parse + validate + map".into(),
            secs: Stat::of(&parse),
            bytes,
        },
    ];
    if device.is_some() {
        rows.push(Row {
            name: "  stage: read + upload (one copy)".into(),
            secs: Stat::of(&copy),
            bytes,
        });
        if dequant.iter().any(|&d| d > 0.0) {
            rows.push(Row {
                name: "  stage: dequantize on the GPU".into(),
                secs: Stat::of(&dequant),
                bytes,
            });
        }
    }
    rows.extend(save_rows(path, device, &opts.scratch, repeat, bytes)?);
    rows.extend(limit_rows(&files, &opts.scratch, repeat, bytes)?);
    if let Some(dev) = device {
        let a = format::open(path)?;
        let source = read_all(&files, &opts.scratch)?;
        rows.extend(gpu_limits::rows(dev, &a, &source, repeat)?);
    }
    Ok(Report {
        rows,
        peak_load_rss: peak,
        weight_bytes: bytes,
        tensors,
        device: device.map_or("CPU".into(), Device::describe),
        device_secs,
        cache: if cold {
            "cold (posix_fadvise DONTNEED before each load)".into()
        } else {
            "warm".into()
        },
    })
}

/// Saves from the device, interleaved with the raw write of the same bytes from memory, so both
/// meet the same page-cache and writeback conditions. Each lands in a fresh location that is
/// removed (untimed) afterwards.
fn save_rows(
    path: &Path,
    device: Option<&Device>,
    scratch: &Path,
    repeat: usize,
    bytes: u64,
) -> Result<Vec<Row>> {
    let a = format::open(path)?;
    let files = weight_files(&a);
    let source = read_all(&files, scratch)?;
    let dst = scratch.join(if format::is_safetensors_path(path) {
        "saved.safetensors"
    } else {
        "saved"
    });
    let raw = scratch.join("limit-write.bin");
    let gw = match device {
        Some(dev) => Some(dev.upload(&a, &UploadOptions::default(), &mut |_, _| {})?),
        None => None,
    };
    let mut samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..repeat {
        for (k, durable) in [false, true].into_iter().enumerate() {
            let opts = SaveOptions {
                durable,
                ..Default::default()
            };
            let t = Instant::now();
            match &gw {
                Some(gw) => format::save(&dst, &a.spec, &gw.reader(256 << 20)?, opts)?,
                None => format::save(&dst, &a.spec, &a, opts)?,
            };
            samples[k].push(secs(t.elapsed()));
            remove(&dst);
            samples[2 + k].push(plain_write(&raw, &source, durable)?);
        }
        // The same write into blocks reserved up front, as layercake's writers do.
        let t = Instant::now();
        let mut f = crate::atomic::create_sized(&raw, source.len() as u64)?;
        f.write_all(&source).map_err(io(&raw))?;
        drop(f);
        samples[4].push(secs(t.elapsed()));
        remove(&raw);
    }
    let names = [
        "save (no fsync)",
        "save (fsync)",
        "limit: write (no fsync)",
        "limit: write (fsync)",
        "limit: write into reserved blocks (no fsync)",
    ];
    Ok(names
        .iter()
        .zip(&samples)
        .map(|(n, s)| Row {
            name: n.to_string(),
            secs: Stat::of(s),
            bytes,
        })
        .collect())
}

/// The weight files' bytes, concatenated.
fn read_all(files: &[PathBuf], scratch: &Path) -> Result<Vec<u8>> {
    Ok(files
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(scratch))?
        .concat())
}

fn remove(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

/// Seconds to read `files` (`bytes` in all) into one fresh allocation of their size: above the
/// allocator's mmap threshold, so its pages are new and first-touch faults are paid, as a
/// loader's destination pays them. This machine's own file-read limit.
pub fn fresh_read(files: &[PathBuf], bytes: u64) -> Result<f64> {
    let t = Instant::now();
    let mut all = Vec::with_capacity(bytes as usize);
    for f in files {
        std::fs::File::open(f)
            .and_then(|mut h| h.read_to_end(&mut all))
            .map_err(io(f))?;
    }
    std::hint::black_box(&all);
    Ok(secs(t.elapsed()))
}

/// Seconds to write `bytes` from memory into a new file at `path` (then fsync'd when `durable`);
/// the file is removed afterwards, untimed. This machine's own file-write limit.
pub fn plain_write(path: &Path, bytes: &[u8], durable: bool) -> Result<f64> {
    let t = Instant::now();
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    if durable {
        f.sync_all().map_err(io(path))?;
    }
    drop(f);
    let took = secs(t.elapsed());
    remove(path);
    Ok(took)
}

fn limit_rows(files: &[PathBuf], scratch: &Path, repeat: usize, bytes: u64) -> Result<Vec<Row>> {
    let mut fresh = Vec::new();
    let mut reused_t = Vec::new();
    let mut reused = vec![0u8; 8 << 20];
    for _ in 0..repeat {
        fresh.push(fresh_read(files, bytes)?);
        let t = Instant::now();
        for f in files {
            let mut h = std::fs::File::open(f).map_err(io(f))?;
            while h.read(&mut reused).map_err(io(f))? > 0 {}
        }
        reused_t.push(secs(t.elapsed()));
    }
    let source = read_all(files, scratch)?;
    let mut copy = Vec::new();
    let mut dst = vec![1u8; source.len()];
    for _ in 0..repeat {
        let t = Instant::now();
        dst.copy_from_slice(&source);
        std::hint::black_box(&dst);
        copy.push(secs(t.elapsed()));
    }
    // The integrity hash (`convert --with-hashes`, `verify`): xxh3-64 over the same bytes.
    let mut hash = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(xxhash_rust::xxh3::xxh3_64(&source));
        hash.push(secs(t.elapsed()));
    }
    let rows = [
        ("limit: read into fresh memory", fresh),
        ("limit: read into a reused buffer", reused_t),
        ("limit: memcpy", copy),
        ("xxh3-64 hash (integrity records)", hash),
    ];
    Ok(rows
        .into_iter()
        .map(|(n, s)| Row {
            name: n.into(),
            secs: Stat::of(&s),
            bytes,
        })
        .collect())
}

/// Load throughput over tensor counts at a fixed total size: the per-tensor overhead.
pub fn sweep(
    total: u64,
    counts: &[usize],
    device: Option<&Device>,
    opts: &Options,
) -> Result<Vec<(usize, Row)>> {
    let mut out = Vec::new();
    for &n in counts {
        let a = format::synthetic::mlp(total, n)?;
        let dir = opts.scratch.join(format!("sweep-{n}"));
        format::save(
            &dir,
            &a.spec,
            &a,
            SaveOptions {
                durable: false,
                ..Default::default()
            },
        )?;
        let mut samples = Vec::new();
        for _ in 0..opts.repeat.max(1) {
            let t = Instant::now();
            let a = format::open(&dir)?;
            if let Some(dev) = device {
                dev.upload(&a, &UploadOptions::default(), &mut |_, _| {})?;
            }
            samples.push(secs(t.elapsed()));
        }
        let _ = std::fs::remove_dir_all(&dir);
        out.push((
            n,
            Row {
                name: format!("load, {n} tensors"),
                secs: Stat::of(&samples),
                bytes: a.spec.stored_bytes(),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_takes_the_median() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of(&[1.0, 2.0, 3.0, 10.0]).median, 2.5);
    }

    #[test]
    fn peak_rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().is_some_and(|p| p > 0));
        }
    }
}
