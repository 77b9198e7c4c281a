//! Layers: one file per layer (or per family sharing one implementation, such as the merge
//! layers or the pooling layers), each registered by one line in [`REGISTRY`].
//!
//! A layer is built once, when the graph first calls it: its builder reads the typed config,
//! fetches its weights by name with a shape check (the input shapes are known by then, as in
//! Keras's `build`), and returns an object that infers output shapes and runs on the CPU.

mod activation;
pub mod attention;
mod category;
mod conv;
mod conv_lstm;
mod dense;
mod discretization;
mod einsum;
mod embedding;
pub mod group_norm;
mod merge;
mod moves;
mod normalization;
mod padding;
mod pooling;
mod recurrent;
mod resample;
mod reshape;
mod wrappers;

pub use activation::{Activation, Parametric};

pub use attention::Attention;
pub use conv_lstm::ConvLstm;
pub(crate) use merge::dot_row_maps;
pub use recurrent::{Cell, Recurrent};
pub use wrappers::{Bidirectional, MergeMode};

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;
use std::cell::RefCell;

/// A symbolic shape: batch first, `None` for unknown dimensions.
pub type Shape = Vec<Option<usize>>;

/// A function over blocks of whole rows of a tensor, in place ([`Layer::row_epilogue`]).
pub type RowFn<'a> = Box<dyn Fn(&mut [f32]) + Sync + 'a>;

/// A built layer.
pub trait Layer: Send + Sync {
    /// Output shape for these input shapes (batch included).
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape>;
    /// Run on the CPU: the reference implementation.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor>;
    /// Shapes of the outputs after the first (a recurrent layer's `return_state`, an unmerged
    /// Bidirectional), for these input shapes. Most layers have one output.
    fn extra_output_shapes(&self, _inputs: &[Shape]) -> Result<Vec<Shape>> {
        Ok(Vec::new())
    }
    /// Compute the output over the first input's own values (`rest`: the other inputs), for a
    /// layer whose output has that input's shape, when the CPU executor holds that value's last
    /// use (no copy). `None`: the layer has no such form here and [`Layer::forward`] runs.
    fn forward_in_place(&self, _x: &mut Tensor, _rest: &[&Tensor]) -> Option<Result<()>> {
        None
    }
    /// This layer as a function applied in place to blocks of whole rows (the last axis) of its
    /// one input, when it is one (BatchNormalization on the last axis, activations): the CPU
    /// executor then runs it inside the epilogue of the layer producing that input instead of
    /// as a pass of its own ([`Layer::forward_then`]).
    fn row_epilogue(&self) -> Option<RowFn<'_>> {
        None
    }
    /// [`Layer::forward`] with `then` applied to each block of whole output rows after the
    /// layer's own bias and activation, while the block is in cache. `None`: no such form.
    fn forward_then(&self, _inputs: &[&Tensor], _then: &RowFn<'_>) -> Option<Result<Tensor>> {
        None
    }
    /// Run, returning the first output and the others ([`Layer::extra_output_shapes`]).
    fn forward_all(
        &self,
        inputs: &[&Tensor],
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        Ok((self.forward_masked(inputs, mask)?, Vec::new()))
    }
    /// Run with the mask of the first input (`[batch, steps]`, 1 keep / 0 masked), if it has
    /// one. Only layers that consume masks (the recurrent ones) look at it.
    fn forward_masked(&self, inputs: &[&Tensor], _mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward(inputs)
    }
    /// How the output's mask follows from the input's. By default dropped: as in TF.js, a
    /// layer that does not support masking returns none.
    fn mask_rule(&self) -> MaskRule {
        MaskRule::Drop
    }
    /// The layer in terms of the GPU executor's primitives; `None` where it has no kernels yet.
    fn gpu(&self) -> Option<GpuForm<'_>> {
        None
    }
    /// `Some(n)` where the layer reads its input as integer ids in `0..n` (Embedding,
    /// CategoryEncoding): the input's domain, for drawing valid seeded inputs.
    fn id_range(&self) -> Option<usize> {
        None
    }
}

/// How a layer's output mask (`[batch, steps]`, 1 keep / 0 masked) follows from its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskRule {
    /// No output mask.
    Drop,
    /// The input's mask, unchanged.
    Keep,
    /// From integer ids: 0 is masked (Embedding with `mask_zero`).
    Ids,
    /// From features: a step whose features all equal the value is masked (Masking).
    Features(f32),
    /// Several inputs: AND of the masks present, an unmasked input counting as all kept
    /// (TF.js's Concatenate along the last axis); none when no input has one.
    All,
    /// Several inputs: OR of the masks when every input has one, else none (Keras 3's merges;
    /// an unmasked input of its Concatenate makes the OR all-kept, the same as none).
    Any,
    /// A mask on any input is refused with this reason (semantics layercake does not follow).
    Refuse(&'static str),
}

impl MaskRule {
    /// The output mask of a layer with inputs carrying `masks` (one per input), `x` the first
    /// input; the multi-input rules combine them, the others follow the first.
    pub fn combine(self, x: &Tensor, masks: &[Option<&Tensor>]) -> Result<Option<Tensor>> {
        let present = || masks.iter().flatten();
        match self {
            MaskRule::All => Ok(present()
                .map(|t| (*t).clone())
                .reduce(|a, b| zip_masks(a, &b, f32::min))),
            MaskRule::Any if masks.iter().all(Option::is_some) => Ok(present()
                .map(|t| (*t).clone())
                .reduce(|a, b| zip_masks(a, &b, f32::max))),
            MaskRule::Any => Ok(None),
            MaskRule::Refuse(why) if present().next().is_some() => {
                Err(Error::Model(format!("a Keras mask reaches it: {why}")))
            }
            MaskRule::Refuse(_) => Ok(None),
            rule => Ok(rule.apply(x, masks.first().copied().flatten())),
        }
    }

    /// The output mask for input `x` (first input) carrying `mask`.
    pub fn apply(self, x: &Tensor, mask: Option<&Tensor>) -> Option<Tensor> {
        let (shape, data): (Vec<usize>, Vec<f32>) = match self {
            MaskRule::Drop | MaskRule::Refuse(_) => return None,
            MaskRule::Keep | MaskRule::All | MaskRule::Any => return mask.cloned(),
            MaskRule::Ids => (
                x.shape.clone(),
                x.data
                    .iter()
                    .map(|&v| f32::from(u8::from(v != 0.0)))
                    .collect(),
            ),
            MaskRule::Features(value) => {
                let f = (*x.shape.last().unwrap_or(&1)).max(1);
                (
                    x.shape[..x.rank().saturating_sub(1)].to_vec(),
                    x.data
                        .chunks(f)
                        .map(|row| f32::from(u8::from(row.iter().any(|&v| v != value))))
                        .collect(),
                )
            }
        };
        Some(Tensor {
            shape,
            data: data.into(),
            source: None,
        })
    }
}

fn zip_masks(mut a: Tensor, b: &Tensor, f: fn(f32, f32) -> f32) -> Tensor {
    a.data
        .iter_mut()
        .zip(&b.data)
        .for_each(|(x, y)| *x = f(*x, *y));
    a
}

/// Element-wise binary operations of the merge layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// Sum.
    Add,
    /// Product.
    Multiply,
    /// Sum, then divided by the input count.
    Average,
    /// Larger.
    Maximum,
    /// Smaller.
    Minimum,
    /// First minus second (Keras's Subtract: exactly two inputs).
    Subtract,
}

/// What a layer computes, in the GPU executor's primitives (`model::gpu`).
pub enum GpuForm<'a> {
    /// A recurrent layer: input projection, then one dispatch per time step.
    Recurrent(&'a Recurrent),
    /// ConvLSTM2D: input convolution for every step, then per step a recurrent convolution
    /// and the LSTM gates.
    ConvLstm(&'a ConvLstm),
    /// Recurrent layers run one after another (StackedRNNCells).
    Stack(&'a [Recurrent]),
    /// Both directions of a recurrent layer, merged.
    Bidirectional(&'a Bidirectional),
    /// The inner form on `[batch·steps, …]` (TimeDistributed).
    MergeTime(Box<GpuForm<'a>>),
    /// Masking: steps whose features all equal the value are zeroed (and masked).
    Masking(f32),
    /// CategoryEncoding into `depth` columns: counts, or 0/1.
    CategoryEncoding {
        /// `num_tokens`.
        depth: usize,
        /// Count occurrences instead of marking presence.
        count: bool,
    },
    /// Output = input (dropout at inference, flatten and reshape of contiguous data).
    Identity,
    /// MultiHeadAttention: projections (matmuls) around the attention kernel.
    Attention(&'a Attention),
    /// Softmax jointly over the trailing `n` axes (a Softmax layer with a list `axis`).
    JointSoftmax(usize),
    /// Discretization: each value's bucket among the boundaries.
    Bucketize(&'a [f32]),
    /// GroupNormalization / UnitNormalization over a channels-last view.
    GroupNorm(&'a group_norm::GroupNorm),
    /// The inner form, then a row-wise activation (softmax, log_softmax, sparsemax) over the
    /// output's last axis ([`split_row_activation`]).
    ThenRow {
        /// The layer without its activation.
        inner: Box<GpuForm<'a>>,
        /// Applied to the output, in place.
        activation: Activation,
    },
    /// `activation(x · kernel + bias)` over the last axis.
    MatMul {
        /// `[in, out]`.
        kernel: &'a Tensor,
        /// `[out]`.
        bias: Option<&'a Tensor>,
        /// Applied after the bias.
        activation: Activation,
    },
    /// `activation(x * mul[c] + add[c])`, `c` the index along `axis`.
    Affine {
        /// Per-channel factors.
        mul: &'a [f32],
        /// Per-channel offsets.
        add: &'a [f32],
        /// Channel axis (negative counts from the end).
        axis: isize,
        /// Applied last.
        activation: Activation,
    },
    /// Element-wise merge with broadcasting.
    Binary(BinaryOp),
    /// Concatenation along `axis`.
    Concat {
        /// Axis (negative counts from the end).
        axis: isize,
    },
    /// `out = in[map]`: a pure data-movement layer, its index map from [`gather_map_of`].
    Gather,
    /// A parameterized element-wise activation (ReLU with max, LeakyReLU, ELU, ThresholdedReLU).
    Parametric(Parametric),
    /// `x >= 0 ? x : alpha * x`, alpha broadcast over the non-batch axes.
    PRelu(&'a Tensor),
    /// Layer normalization over the trailing `group` values of each row.
    LayerNorm {
        /// Values normalized together (the product of the normalized, trailing axes).
        group: usize,
        /// Epsilon.
        eps: f32,
        /// Scale.
        gamma: Option<&'a Tensor>,
        /// Offset.
        beta: Option<&'a Tensor>,
    },
    /// `out[i] = Σ_t w[i, t] · in[map[i, t]]`: a fixed linear resampling (bilinear upsampling).
    WeightedGather(&'a dyn WeightedMap),
    /// Dot of two rank-2 inputs over their feature axis, optionally normalized.
    RowDot {
        /// Cosine similarity instead of the plain dot product.
        normalize: bool,
        /// The contracted axis of each input (rank-2 inputs run directly; others gather their
        /// contracted vectors into rows first, see `merge::dot_row_maps`).
        axes: [usize; 2],
    },
    /// Rows of `table` picked by the (float-carried) ids of the input.
    Embedding(&'a Tensor),
    /// The inner form run on the input permuted by `to` (output axis `i` is input axis
    /// `to[i]`); the result is permuted back when it keeps the input's rank. channels_first
    /// layers (channels moved last), softmax over a middle axis, layer norm over leading axes.
    Permuted {
        /// The permutation applied to the input.
        to: Vec<usize>,
        /// What runs on the permuted input.
        inner: Box<GpuForm<'a>>,
    },
    /// Max or mean over gathered windows: the map is `[rows, window, channels]`.
    WindowReduce {
        /// The window map for an input shape.
        map: &'a dyn GatherMap,
        /// Max (else mean over the taps inside the input).
        max: bool,
        /// A mean weighted by the input's mask when it has one (Keras 3 GlobalAveragePooling1D).
        masked: bool,
    },
    /// Depthwise convolution over a window map (`[rows, window, channels]`), optionally followed
    /// by a pointwise matmul (SeparableConv2D). Bias and activation apply last.
    Depthwise {
        /// The window map for an input shape.
        map: &'a dyn GatherMap,
        /// `[kh, kw, channels, multiplier]`.
        depthwise: &'a Tensor,
        /// `[1, 1, channels·multiplier, filters]`.
        pointwise: Option<&'a Tensor>,
        /// Bias of the last stage.
        bias: Option<&'a Tensor>,
        /// Applied last.
        activation: Activation,
    },
    /// A gather (im2col) followed by `activation(· kernel + bias)`: convolutions.
    GatherMatMul {
        /// The im2col map for an input shape: `(rows × k, map)`.
        map: &'a dyn GatherMap,
        /// `[k, out]`.
        kernel: &'a Tensor,
        /// `[out]`.
        bias: Option<&'a Tensor>,
        /// Applied after the bias.
        activation: Activation,
    },
}

/// `form` as is for channels_last data; for channels_first data, run on the input with its
/// channels moved last (rank known only at predict time: `to` is empty and means exactly that).
pub fn cf_wrap(channels_first: bool, form: GpuForm<'_>) -> GpuForm<'_> {
    if channels_first {
        GpuForm::Permuted {
            to: Vec::new(),
            inner: Box::new(form),
        }
    } else {
        form
    }
}

/// Channels_first layers apply their activation to the NCHW output, as TF.js and Keras do.
/// Element-wise activations commute with the layout, but a row-wise one (softmax, log_softmax,
/// sparsemax) normalizes the output's last axis (the width), not the channels. Returns the
/// activation to compute in channels-last space and the row activation to apply after it.
pub fn split_row_activation(
    act: Activation,
    channels_first: bool,
) -> (Activation, Option<Activation>) {
    if channels_first && act.is_row_wise() {
        (Activation::Linear, Some(act))
    } else {
        (act, None)
    }
}

/// `layer`, followed by the row activation `after` over its output's last axis, if any.
pub fn then_row(layer: Box<dyn Layer>, after: Option<Activation>) -> Box<dyn Layer> {
    match after {
        Some(act) => Box::new(ThenRow { inner: layer, act }),
        None => layer,
    }
}

struct ThenRow {
    inner: Box<dyn Layer>,
    act: Activation,
}

impl Layer for ThenRow {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.inner.output_shape(inputs)
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut y = self.inner.forward(inputs)?;
        let last = *y.shape.last().unwrap_or(&1);
        self.act.apply(&mut y.data, last);
        Ok(y)
    }
    fn mask_rule(&self) -> MaskRule {
        self.inner.mask_rule()
    }
    fn gpu(&self) -> Option<GpuForm<'_>> {
        Some(GpuForm::ThenRow {
            inner: Box::new(self.inner.gpu()?),
            activation: self.act,
        })
    }
}

/// The permutation moving `axes` (sorted) to the end of a rank-`rank` shape, others in order.
pub fn axes_last(axes: &[usize], rank: usize) -> Vec<usize> {
    (0..rank)
        .filter(|a| !axes.contains(a))
        .chain(axes.iter().copied())
        .collect()
}

/// The taps of a fixed linear resampling: `out[i] = Σ_t weight[i·taps + t] · in[index[i·taps + t]]`.
pub struct Taps {
    /// Output shape.
    pub shape: Vec<usize>,
    /// Taps per output element.
    pub taps: usize,
    /// Input index per tap ([`GATHER_PAD`] for none).
    pub index: Vec<u32>,
    /// Weight per tap.
    pub weight: Vec<f32>,
}

/// A layer whose output is a fixed linear combination of input elements.
pub trait WeightedMap: Sync {
    /// The taps for an input of `shape`.
    fn weighted_map(&self, shape: &[usize]) -> Result<Taps>;
}

/// Marks a padded position in a gather map.
pub const GATHER_PAD: u32 = u32::MAX;

/// A layer that gathers an im2col matrix from its input.
pub trait GatherMap: Sync {
    /// For an input of `shape`: the gathered matrix's shape `[rows, k]` and, per element, the
    /// flat input index it copies ([`GATHER_PAD`] for zeros).
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)>;
}

/// The gather map of a pure data-movement layer, found by running its CPU `forward` on the
/// element indices themselves, shifted by one so that padded zeros stand out (exact below 2^24
/// elements, where f32 holds every integer).
pub fn gather_map_of(layer: &dyn Layer, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
    let n: usize = shape.iter().product();
    if n >= 1 << 24 {
        return Err(Error::Model(format!(
            "{n} elements are too many for an index map"
        )));
    }
    let shifted = Tensor::new(shape.to_vec(), (1..=n).map(|i| i as f32).collect())?;
    let out = layer.forward(&[&shifted])?;
    let map = out
        .data
        .iter()
        .map(|&v| if v == 0.0 { GATHER_PAD } else { v as u32 - 1 })
        .collect();
    Ok((out.shape, map))
}

/// Builds a layer from its context.
pub type Builder = fn(&LayerCtx) -> Result<Box<dyn Layer>>;

/// Every supported class: `(class_name, builder)`.
pub const REGISTRY: &[(&str, Builder)] = &[
    ("InputLayer", reshape::identity),
    ("Dropout", reshape::identity),
    ("SpatialDropout1D", reshape::identity),
    ("GaussianNoise", reshape::identity),
    ("GaussianDropout", reshape::identity),
    ("AlphaDropout", reshape::identity),
    ("Dense", dense::build),
    ("Activation", activation::build_activation_layer),
    ("ReLU", activation::build_relu),
    ("LeakyReLU", activation::build_leaky_relu),
    ("ELU", activation::build_elu),
    ("ThresholdedReLU", activation::build_thresholded_relu),
    ("Softmax", activation::build_softmax),
    ("PReLU", activation::build_prelu),
    ("Flatten", reshape::flatten),
    ("Reshape", reshape::reshape),
    ("Permute", reshape::permute),
    ("RepeatVector", reshape::repeat_vector),
    ("Rescaling", reshape::rescaling),
    ("LayerScale", normalization::layer_scale),
    ("GroupNormalization", group_norm::group_normalization),
    ("UnitNormalization", group_norm::unit_normalization),
    ("MultiHeadAttention", attention::multi_head_attention),
    ("EinsumDense", einsum::einsum_dense),
    ("Discretization", discretization::build),
    ("Add", merge::add),
    ("Multiply", merge::multiply),
    ("Average", merge::average),
    ("Maximum", merge::maximum),
    ("Minimum", merge::minimum),
    ("Subtract", merge::subtract),
    ("Concatenate", merge::concatenate),
    ("Dot", merge::dot),
    ("BatchNormalization", normalization::batch_norm),
    ("LayerNormalization", normalization::layer_norm),
    ("Normalization", normalization::keras_normalization),
    ("Embedding", embedding::build),
    ("Conv1D", conv::conv),
    ("Conv2D", conv::conv),
    ("Conv3D", conv::conv),
    ("Conv2DTranspose", conv::conv_transpose),
    ("Conv3DTranspose", conv::conv_transpose),
    ("Conv1DTranspose", conv::conv_transpose),
    ("DepthwiseConv2D", conv::depthwise),
    ("SeparableConv2D", conv::separable),
    ("DepthwiseConv1D", conv::depthwise),
    ("SeparableConv1D", conv::separable),
    ("MaxPooling1D", pooling::pool),
    ("MaxPooling2D", pooling::pool),
    ("MaxPooling3D", pooling::pool),
    ("AveragePooling1D", pooling::pool),
    ("AveragePooling2D", pooling::pool),
    ("AveragePooling3D", pooling::pool),
    ("GlobalAveragePooling1D", pooling::global),
    ("GlobalAveragePooling2D", pooling::global),
    ("GlobalMaxPooling1D", pooling::global),
    ("GlobalMaxPooling2D", pooling::global),
    ("GlobalAveragePooling3D", pooling::global),
    ("GlobalMaxPooling3D", pooling::global),
    ("ZeroPadding1D", moves::zero_padding),
    ("Cropping1D", moves::cropping),
    ("UpSampling1D", moves::upsampling),
    ("ZeroPadding3D", moves::zero_padding),
    ("Cropping3D", moves::cropping),
    ("UpSampling3D", moves::upsampling),
    ("ZeroPadding2D", padding::zero_padding),
    ("Cropping2D", padding::cropping),
    ("UpSampling2D", padding::upsampling),
    ("SimpleRNN", recurrent::build),
    ("GRU", recurrent::build),
    ("LSTM", recurrent::build),
    ("Bidirectional", wrappers::bidirectional),
    ("TimeDistributed", wrappers::time_distributed),
    ("Masking", wrappers::masking),
    ("RNN", recurrent::build_rnn),
    ("ConvLSTM2D", conv_lstm::build),
    ("Resizing", resample::resizing),
    ("CategoryEncoding", category::build),
    ("CenterCrop", resample::center_crop),
    // Random at every call in TF.js 4.22 (even at inference); layercake applies Keras's
    // inference behaviour, the identity, so predictions are deterministic.
    ("RandomWidth", reshape::identity),
    ("RandomHeight", reshape::identity),
    // Keras 3 classes TF.js 4.22 lacks. The augmentation layers return their input unchanged
    // at inference (Keras 3.15's `transform_images` with `training=False`); RandomCrop is not
    // among them (it center-crops and resizes at inference) and stays unsupported.
    ("Identity", reshape::identity),
    ("RandomFlip", reshape::identity),
    ("RandomCrop", reshape::random_crop),
    ("RandomRotation", reshape::identity),
    ("RandomZoom", reshape::identity),
    ("RandomTranslation", reshape::identity),
    ("RandomContrast", reshape::identity),
    ("RandomBrightness", reshape::identity),
];

/// The builder of `class`, or an error listing what is supported.
pub fn builder(class: &str, layer: &str) -> Result<Builder> {
    REGISTRY
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, b)| *b)
        .ok_or_else(|| {
            let names: Vec<&str> = REGISTRY.iter().map(|(c, _)| *c).collect();
            Error::Model(format!(
                "layer '{layer}': class '{class}' is not supported (supported: {})",
                names.join(", ")
            ))
        })
}

/// Where a layer's weights come from: decoded by manifest name.
pub trait WeightSource {
    /// The shape and float32 values of weight `name`, if the model has it.
    fn get(&self, name: &str) -> Option<(Vec<usize>, crate::tensor::Data)>;
}

/// What a builder sees: class, name, config, input shapes, weights.
pub struct LayerCtx<'a> {
    /// Class name.
    pub class: &'a str,
    /// Layer name (also the weight scope).
    pub name: &'a str,
    /// The layer's `config` object.
    pub config: &'a Value,
    /// Shapes of the inputs of the first call.
    pub inputs: &'a [Shape],
    /// Weight source.
    pub weights: &'a dyn WeightSource,
    /// Weights taken so far, in order, each with the role the layer took it as (`kernel`,
    /// `moving_mean`, …): for the unused-weight report and the per-layer parameter counts.
    pub taken: &'a RefCell<Vec<(String, String)>>,
    /// The model was written by Keras 3 (`keras_version` 3.x): Keras 3 semantics apply.
    pub keras3: bool,
    /// `keras_version` as (major, minor); (0, 0) when the topology names none.
    pub keras_version: (u32, u32),
    /// Keras 3: the layer's h5 path (`layers/dense_1`). Its weights are `<path>/vars/<i>`, `i`
    /// counting the layer's variables in creation order ([`keras3_var_index`]), not
    /// `<name>/<weight>`.
    pub h5: Option<&'a str>,
    /// Keras 3: numbers passed positionally in the call (`x + 3.0` is `Add(x, 3.0)`), each with
    /// its argument position. Read them with [`LayerCtx::constants`]; a class that does not
    /// leaves them unread and the graph refuses the call.
    pub constants: &'a [(usize, f64)],
    /// Keras 3: the call's keyword arguments (`{}` or null elsewhere). Tensors among them follow
    /// the positional tensors in the layer's inputs, in this object's order. Read them with
    /// [`LayerCtx::kwargs`]; a class that does not leaves tensors in them refused.
    pub kwargs: &'a Value,
    /// Set when [`LayerCtx::constants`] or [`LayerCtx::kwargs`] was called.
    pub call_read: &'a std::cell::Cell<bool>,
}

/// Position of weight `short` among the variables Keras 3 creates for `class` with `config`
/// (trainable first, then non-trainable; absent ones skipped).
pub fn keras3_var_index(class: &str, config: &Value, short: &str) -> Option<usize> {
    let order: &[&str] = match class {
        "SeparableConv1D" | "SeparableConv2D" => &["depthwise_kernel", "pointwise_kernel", "bias"],
        "DepthwiseConv1D" | "DepthwiseConv2D" => &["depthwise_kernel", "bias"],
        "BatchNormalization" => &["gamma", "beta", "moving_mean", "moving_variance"],
        "LayerNormalization" => &["gamma", "beta"],
        "LayerScale" => &["gamma"],
        "GroupNormalization" => &["gamma", "beta"],
        "Normalization" => &["mean", "variance", "count"],
        "Embedding" => &["embeddings"],
        "PReLU" => &["alpha"],
        "SimpleRNN" | "GRU" | "LSTM" | "ConvLSTM2D" => &["kernel", "recurrent_kernel", "bias"],
        _ => &["kernel", "bias"],
    };
    let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(true);
    order
        .iter()
        .filter(|&&w| match w {
            "bias" => flag("use_bias"),
            "gamma" => flag("scale"),
            "beta" => flag("center"),
            _ => true,
        })
        .position(|&w| w == short)
}

impl<'a> LayerCtx<'a> {
    pub(crate) fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Model(format!("layer '{}' ({}): {msg}", self.name, self.class))
    }

    /// Weight `<layer>/<short>` (or the `<layer>/<cell>/<short>` variant, as TF.js matches), with
    /// its shape checked against `expected`.
    pub fn weight(&self, short: &str, expected: &[usize]) -> Result<Tensor> {
        self.optional_weight(short, expected)?.ok_or_else(|| {
            let tried = self.weight_names(short).unwrap_or_default();
            let naming = if tried.len() > 1 {
                "by h5 path, then by layer path"
            } else {
                "by layer path"
            };
            self.err(format!(
                "weight '{}' is missing from the model's weights (looked up {naming}: {})",
                tried.first().map_or("", String::as_str),
                tried.join(", ")
            ))
        })
    }

    /// The manifest names weight `short` may have, in the order tried: for Keras 3 the h5 path
    /// `<path>/vars/<i>` (recurrent layers keep theirs in `<path>/cell`), then, as for every
    /// model, the layer path `<name>/<short>` (which also matches `<name>/<cell>/<short>`):
    /// converters write Keras 3 weights either way.
    fn weight_names(&self, short: &str) -> Result<Vec<String>> {
        let by_layer = format!("{}/{short}", self.name);
        let Some(path) = self.h5 else {
            return Ok(vec![by_layer]);
        };
        let i = keras3_var_index(self.class, self.config, short).ok_or_else(|| {
            self.err(format!(
                "Keras 3 creates no '{short}' variable for this layer"
            ))
        })?;
        let cell = if matches!(self.class, "SimpleRNN" | "GRU" | "LSTM" | "ConvLSTM2D") {
            "/cell"
        } else {
            ""
        };
        Ok(vec![format!("{path}{cell}/vars/{i}"), by_layer])
    }

    /// [`LayerCtx::weight`] for a weight the config may omit.
    pub fn optional_weight(&self, short: &str, expected: &[usize]) -> Result<Option<Tensor>> {
        let found = self
            .weight_names(short)?
            .into_iter()
            .find_map(|name| self.weights.get(&name).map(|w| (name, w)));
        let Some((name, (shape, data))) = found else {
            return Ok(None);
        };
        if shape != expected {
            return Err(self.err(format!(
                "weight '{name}' has shape {} but the layer expects {}",
                crate::shape::show(&shape),
                crate::shape::show(expected)
            )));
        }
        let source = Some(std::sync::Arc::from(name.as_str()));
        self.taken.borrow_mut().push((name, short.to_string()));
        Ok(Some(Tensor {
            shape,
            data,
            source,
        }))
    }

    /// The single input's shape.
    pub fn input(&self) -> Result<&Shape> {
        match self.inputs {
            [one] => Ok(one),
            other => Err(self.err(format!("expects one input, got {}", other.len()))),
        }
    }

    /// A known (non-null) dimension of the input at `axis` (negative counts from the end).
    pub fn input_dim(&self, axis: isize) -> Result<usize> {
        let shape = self.input()?;
        let i = normalize_axis(axis, shape.len()).ok_or_else(|| {
            self.err(format!("axis {axis} out of range for rank {}", shape.len()))
        })?;
        shape[i].ok_or_else(|| self.err(format!("input dimension {i} must be known")))
    }

    /// Config value `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    /// A non-negative integer config value.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| {
                self.err(format!(
                    "config '{key}' is missing or not a non-negative integer"
                ))
            })
    }

    /// A non-negative integer config value with a default (also when null).
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    /// The call's constant operands (argument position, value), marked as understood.
    pub fn constants(&self) -> &'a [(usize, f64)] {
        self.call_read.set(true);
        self.constants
    }

    /// Accept `initial_state` tensors passed by keyword (Keras 3 `rnn(x, initial_state=[h, c])`):
    /// they are the layer's inputs after the sequence, as TF.js passes them positionally.
    pub fn accept_initial_state(&self) -> Result<()> {
        if let Value::Object(map) = self.kwargs {
            let refused = map
                .iter()
                .find(|(k, v)| *k != "initial_state" && !(v.is_null() || *k == "training"));
            if let Some((k, v)) = refused {
                return Err(self.err(format!("keyword argument '{k}' ({v}) is not supported")));
            }
        }
        self.call_read.set(true);
        Ok(())
    }

    /// The call's keyword arguments, marked as understood.
    pub fn kwargs(&self) -> &'a Value {
        self.call_read.set(true);
        self.kwargs
    }

    /// A number config value with a default.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(format!("config '{key}' is not a number"))),
        }
    }

    /// A boolean config value with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(default)
    }

    /// A string config value with a default.
    pub fn str_or<'v>(&'v self, key: &str, default: &'v str) -> &'v str {
        self.get(key).and_then(Value::as_str).unwrap_or(default)
    }

    /// A positive int-or-list config value (sizes, strides, dilations) expanded to `n` entries
    /// (`kernel_size: 3` → `[3, 3]`); 0 is an error (found by fuzzing: a stride of 0 divided
    /// by zero).
    pub fn ints(&self, key: &str, n: usize, default: Option<usize>) -> Result<Vec<usize>> {
        let v = self.ints_any(key, n, default)?;
        if v.contains(&0) {
            return Err(self.err(format!("config '{key}' must be positive, got {v:?}")));
        }
        Ok(v)
    }

    fn ints_any(&self, key: &str, n: usize, default: Option<usize>) -> Result<Vec<usize>> {
        match self.get(key) {
            None => default
                .map(|d| vec![d; n])
                .ok_or_else(|| self.err(format!("config '{key}' is missing"))),
            Some(Value::Number(x)) => x
                .as_u64()
                .map(|v| vec![v as usize; n])
                .ok_or_else(|| self.err(format!("config '{key}' is not a non-negative integer"))),
            Some(Value::Array(list)) => {
                let v: Option<Vec<usize>> = list
                    .iter()
                    .map(|x| x.as_u64().map(|u| u as usize))
                    .collect();
                match v {
                    Some(v) if v.len() == n => Ok(v),
                    Some(v) if v.len() == 1 => Ok(vec![v[0]; n]),
                    _ => {
                        Err(self.err(format!("config '{key}' must be an integer or {n} integers")))
                    }
                }
            }
            Some(_) => Err(self.err(format!("config '{key}' must be an integer or a list"))),
        }
    }

    /// True for `data_format: channels_first`.
    pub fn channels_first(&self) -> bool {
        matches!(
            self.str_or("data_format", "channels_last"),
            "channels_first" | "channelsFirst"
        )
    }

    /// The `activation` config, parsed.
    pub fn activation(&self) -> Result<Activation> {
        Activation::parse(self.get("activation"), self.keras3()).map_err(|e| self.err(e))
    }

    /// True when the model was written by Keras 3 (different activation semantics).
    pub fn keras3(&self) -> bool {
        self.keras3
    }
}

/// `axis` (negative from the end) as an index into a rank-`rank` shape.
pub fn normalize_axis(axis: isize, rank: usize) -> Option<usize> {
    let a = if axis < 0 { rank as isize + axis } else { axis };
    (0..rank as isize).contains(&a).then_some(a as usize)
}

/// The single input of a one-input layer.
pub fn one<'a>(inputs: &[&'a Tensor], layer: &str) -> Result<&'a Tensor> {
    match inputs {
        [t] => Ok(t),
        _ => Err(Error::Model(format!(
            "layer '{layer}' expects one input, got {}",
            inputs.len()
        ))),
    }
}

/// `x` (`[b, h, w, c]`) resized to `out_h × out_w` as TF.js's `tf.image.resizeBilinear` does by
/// default (no corner alignment, no half-pixel centers): how TF.js code fits a picture to an
/// image model's input.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    resample::Resample {
        sampling: resample::Sampling::Bilinear { align: false },
        out: [out_h, out_w],
    }
    .apply(x)
}
