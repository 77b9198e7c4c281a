//! Load profile for many-tensor models (issue 41): `cargo run --release --example load_profile -- MODEL [N] [gpu]` prints the median open (and open + upload) time over N runs.
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use std::time::Instant;
fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
fn main() -> layercake::Result<()> {
    sizes();
    let p = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20);
    let gpu = std::env::args().nth(3).is_some();
    let device = if gpu { Some(Device::open()?) } else { None };
    let (mut o, mut tt) = (vec![], vec![]);
    for _ in 0..n {
        let t = Instant::now();
        let a = layercake::open(&p)?;
        o.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(d) = &device {
            let g = d.upload(&a, &UploadOptions::default(), &mut |_, _| {})?;
            tt.push(t.elapsed().as_secs_f64() * 1e3);
            drop(g);
        }
        drop(a);
    }
    eprintln!(
        "open median {:.1} ms (min {:.1})",
        med(o.clone()),
        o.iter().cloned().fold(f64::MAX, f64::min)
    );
    if gpu {
        eprintln!(
            "open+upload median {:.1} ms (min {:.1})",
            med(tt.clone()),
            tt.iter().cloned().fold(f64::MAX, f64::min)
        );
    }
    Ok(())
}
#[allow(dead_code)]
fn sizes() {
    eprintln!(
        "WeightSpec {} Quant {} Map {}",
        std::mem::size_of::<layercake::WeightSpec>(),
        std::mem::size_of::<layercake::format::manifest::Quantization>(),
        std::mem::size_of::<serde_json::Map<String, serde_json::Value>>()
    );
}
