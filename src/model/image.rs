//! PNG / JPEG pictures as the input of an image model (the `image` crate): decoded to RGB (or
//! gray for one-channel models), fitted to the model's input size with TF.js's
//! `resizeBilinear`, and scaled as the model was trained (`0..1`, `-1..1` or raw `0..255`), as
//! TF.js code does with `tf.browser.fromPixels`; and the top classes of a prediction.

use super::{Model, Named};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// How pixel values (0..255) are mapped before the model sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelScale {
    /// `v / 255` (Keras `Rescaling(1/255)` models, most TF.js examples).
    Unit,
    /// `v / 127.5 - 1` (MobileNet, Teachable Machine image models).
    Signed,
    /// `v` unchanged (models that normalize inside).
    Raw,
}

impl PixelScale {
    /// Parse `0..1`, `-1..1` or `0..255`.
    pub fn parse(s: &str) -> Option<PixelScale> {
        match s {
            "0..1" => Some(PixelScale::Unit),
            "-1..1" => Some(PixelScale::Signed),
            "0..255" => Some(PixelScale::Raw),
            _ => None,
        }
    }

    fn apply(self, v: f32) -> f32 {
        match self {
            PixelScale::Unit => v / 255.0,
            PixelScale::Signed => v / 127.5 - 1.0,
            PixelScale::Raw => v,
        }
    }
}

/// The model's one input from the picture at `path`: a batch of one `[1, h, w, c]` at the
/// model's input size (the picture's own where the model leaves it free).
pub fn read_image(path: &Path, model: &Model, scale: PixelScale) -> Result<Vec<Named>> {
    let [port] = model.inputs() else {
        return Err(Error::Usage(format!(
            "{}: an image is one input; the model has {} inputs",
            path.display(),
            model.inputs().len()
        )));
    };
    let (h, w, c) = match port.shape[..] {
        [_, h, w, Some(c @ (1 | 3))] => (h, w, c),
        _ => {
            return Err(Error::Usage(format!(
                "{}: input '{}' has shape {} — not an image input [batch, height, width, 1 or 3]",
                path.display(),
                port.name,
                crate::shape::show_opt(&port.shape)
            )))
        }
    };
    let picture = image::open(path)
        .map_err(|e| Error::format(path, format!("not a PNG or JPEG picture: {e}")))?;
    let (pw, ph) = (picture.width() as usize, picture.height() as usize);
    let pixels: Vec<f32> = if c == 1 {
        picture
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect()
    } else {
        picture
            .to_rgb8()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect()
    };
    let mut x = Tensor::new(vec![1, ph, pw, c], pixels)?;
    let (oh, ow) = (h.unwrap_or(ph), w.unwrap_or(pw));
    if (oh, ow) != (ph, pw) {
        x = crate::layers::resize_bilinear(&x, oh, ow)?;
    }
    let data: Vec<f32> = x.data.iter().map(|&v| scale.apply(v)).collect();
    Ok(vec![Named {
        name: port.name.clone(),
        dtype: "float32".into(),
        tensor: Tensor::new(x.shape.clone(), data)?,
    }])
}

/// The `n` largest values of the first row of `output` (`[1, classes]` or `[classes]`), largest
/// first: `(class index, value)`.
pub fn top(output: &Tensor, n: usize) -> Vec<(usize, f32)> {
    let classes = output.shape.last().copied().unwrap_or(0);
    let row = &output.data[..classes.min(output.data.len())];
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

/// Class names from `path`: Teachable Machine's `metadata.json` (`{"labels": [...]}`), a JSON
/// list, or a text file with one name per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let list = json
        .as_ref()
        .and_then(|v| v.get("labels").unwrap_or(v).as_array().cloned());
    match list {
        Some(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::format(path, format!("label {v} is not a string")))
            })
            .collect(),
        None if json.is_some() => Err(Error::format(
            path,
            "JSON labels must be a list or an object with a 'labels' list",
        )),
        None => Ok(text.lines().map(str::to_string).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_ranks_the_first_row() {
        let t = Tensor::new(vec![1, 4], vec![0.1, 0.6, 0.05, 0.25]).unwrap();
        assert_eq!(top(&t, 2), vec![(1, 0.6), (3, 0.25)]);
        assert_eq!(top(&t, 9).len(), 4);
    }

    #[test]
    fn scales_match_their_names() {
        assert_eq!(PixelScale::parse("-1..1").unwrap().apply(255.0), 1.0);
        assert_eq!(PixelScale::parse("0..1").unwrap().apply(51.0), 0.2);
        assert_eq!(PixelScale::parse("0..255").unwrap().apply(7.0), 7.0);
        assert!(PixelScale::parse("0..2").is_none());
    }
}
