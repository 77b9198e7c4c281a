//! Load a model, predict on the GPU when there is one (else on the CPU), print the outputs.
//!
//!   cargo run --example predict -- tests/fixtures/cnn

use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use std::path::PathBuf;

fn main() -> layercake::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fixtures/cnn".into()),
    );
    let model = Model::load(&dir)?;
    for port in model.inputs() {
        println!("input  {} {:?} {}", port.name, port.shape, port.dtype);
    }
    for (class, name, shape) in model.summary() {
        println!("layer  {name:<40} {class:<22} {shape}");
    }
    let inputs: Vec<_> = read_bundle(&dir.join("expected.json"), "inputs")?
        .into_iter()
        .map(|n| n.tensor)
        .collect();
    let outputs = match Device::open() {
        Ok(dev) => GpuModel::new(&dev, &model)?.predict(&inputs)?,
        Err(e) => {
            eprintln!("no GPU ({e}); predicting on the CPU");
            model.predict(&inputs)?
        }
    };
    for (port, t) in model.outputs().iter().zip(&outputs) {
        println!(
            "output {} {:?}: {:?}",
            port.name,
            t.shape,
            &t.data[..t.data.len().min(8)]
        );
    }
    Ok(())
}
