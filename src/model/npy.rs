//! NumPy `.npy` / `.npz` files as prediction inputs and outputs (the `npyz` crate): what a
//! Python user has at hand (`np.save`, `np.savez`). Values of any real or integer dtype (and
//! bool) become float32, as TF.js casts a tensor it is given; outputs are written as float32.

use super::{Model, Named};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use npyz::WriterBuilder;
use std::io::Read;
use std::path::Path;

/// Whether `path` names a NumPy file (`.npy` or `.npz`).
pub fn is_numpy(path: &Path) -> bool {
    matches!(extension(path).as_deref(), Some("npy" | "npz"))
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// The model's inputs from `path`: a `.npy` holds the one input of a single-input model; a
/// `.npz` holds arrays named as the model's inputs, or `arr_0`, `arr_1`, … (`np.savez`'s
/// positional names) in input order.
pub fn read_inputs(path: &Path, model: &Model) -> Result<Vec<Named>> {
    let ports = model.inputs();
    let named = |i: usize, tensor: Tensor| Named {
        name: ports[i].name.clone(),
        dtype: "float32".into(),
        tensor,
    };
    if extension(path).as_deref() == Some("npy") {
        if ports.len() != 1 {
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "{}: a .npy file holds one array, the model has {} inputs ({}); give a .npz with one array per input name",
                path.display(),
                ports.len(),
                names.join(", ")
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        return Ok(vec![named(0, array(&bytes, path, "the array")?)]);
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut npz = npyz::npz::NpzArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not a .npz archive: {e}")))?;
    let available: Vec<String> = npz.array_names().map(str::to_string).collect();
    (0..ports.len())
        .map(|i| {
            let by_name = ports[i].name.as_str();
            let positional = format!("arr_{i}");
            let key = [by_name, positional.as_str()]
                .into_iter()
                .find(|k| available.iter().any(|a| a == k))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: no array '{by_name}' (or '{positional}') for input {i}; the archive holds: {}",
                        path.display(),
                        available.join(", ")
                    ))
                })?
                .to_string();
            let bytes = member(&mut npz, &key, path)?;
            Ok(named(i, array(&bytes, path, &key)?))
        })
        .collect()
}

/// The raw `.npy` bytes of archive member `key`.
fn member(
    npz: &mut npyz::npz::NpzArchive<std::io::BufReader<std::fs::File>>,
    key: &str,
    path: &Path,
) -> Result<Vec<u8>> {
    let bad = |e: std::io::Error| Error::format(path, format!("array '{key}': {e}"));
    let zip = npz.zip_archive();
    let mut file = zip
        .by_name(&npyz::npz::file_name_from_array_name(key))
        .map_err(|e| Error::format(path, format!("array '{key}': {e}")))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(bad)?;
    Ok(bytes)
}

/// One `.npy` array as a float32 tensor (`what` names it in errors).
fn array(bytes: &[u8], path: &Path, what: &str) -> Result<Tensor> {
    let bad = |m: String| Error::format(path, format!("{what}: {m}"));
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("not a .npy array: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(bad(
            "Fortran-ordered; save it C-ordered (np.ascontiguousarray)".into(),
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype().descr();
    let data = values(bytes).ok_or_else(|| {
        bad(format!(
            "dtype {dtype} is not a real, integer or bool array"
        ))
    })?;
    Tensor::new(shape, data).map_err(|e| bad(e.to_string()))
}

/// The values of a `.npy` array of any real / integer / bool dtype, as f32.
fn values(bytes: &[u8]) -> Option<Vec<f32>> {
    fn take<T: npyz::Deserialize>(bytes: &[u8], f: impl Fn(T) -> f32) -> Option<Vec<f32>> {
        let npy = npyz::NpyFile::new(bytes).ok()?;
        let v: Vec<T> = npy.into_vec().ok()?;
        Some(v.into_iter().map(f).collect())
    }
    take::<f32>(bytes, |x| x)
        .or_else(|| take::<f64>(bytes, |x| x as f32))
        .or_else(|| take::<half::f16>(bytes, f32::from))
        .or_else(|| take::<i64>(bytes, |x| x as f32))
        .or_else(|| take::<i32>(bytes, |x| x as f32))
        .or_else(|| take::<i16>(bytes, f32::from))
        .or_else(|| take::<i8>(bytes, f32::from))
        .or_else(|| take::<u64>(bytes, |x| x as f32))
        .or_else(|| take::<u32>(bytes, |x| x as f32))
        .or_else(|| take::<u16>(bytes, f32::from))
        .or_else(|| take::<u8>(bytes, f32::from))
        .or_else(|| take::<bool>(bytes, |x| f32::from(u8::from(x))))
}

/// Write `outputs` to `path` as float32: a `.npy` for a single output, a `.npz` with one array
/// per output name otherwise.
pub fn write_outputs(path: &Path, outputs: &[Named]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    if extension(path).as_deref() == Some("npy") {
        let [one] = outputs else {
            return Err(Error::Usage(format!(
                "{}: the model has {} outputs; a .npy file holds one, give a .npz",
                path.display(),
                outputs.len()
            )));
        };
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        write_array(&mut file, &one.tensor).map_err(io)?;
        return std::io::Write::flush(&mut file).map_err(io);
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut npz = npyz::npz::NpzWriter::new(std::io::BufWriter::new(file));
    for t in outputs {
        let shape: Vec<u64> = t.tensor.shape.iter().map(|&d| d as u64).collect();
        let mut w = npz
            .array::<f32>(&t.name, Default::default())
            .map_err(io)?
            .default_dtype()
            .shape(&shape)
            .begin_nd()
            .map_err(io)?;
        w.extend(t.tensor.data.iter().copied()).map_err(io)?;
        w.finish().map_err(io)?;
    }
    npz.zip_writer()
        .finish()
        .map_err(|e| Error::format(path, e.to_string()))?;
    Ok(())
}

fn write_array(w: &mut impl std::io::Write, t: &Tensor) -> std::io::Result<()> {
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut out = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    out.extend(t.data.iter().copied())?;
    out.finish()
}
