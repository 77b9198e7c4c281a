//! GPU primitives, one file each: the parameters a layer's form binds (resident weights or
//! uploaded derived values, through the executor's `Uploader`), the uniform the kernel takes, and
//! how it records its dispatches. The executor (`model::gpu`) calls [`Primitive::encode`].
//!
//! [`build`] turns a layer's [`GpuForm`] into its primitive; the executor knows nothing of
//! any one kind.

pub(crate) mod affine;
pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod bucketize;
pub(crate) mod category;
pub(crate) mod combinators;
pub(crate) mod concat;
pub(crate) mod conv_lstm;
pub(crate) mod depthwise;
pub(crate) mod embedding;
pub(crate) mod gather;
pub(crate) mod group_norm;
pub(crate) mod joint_softmax;
pub(crate) mod layer_norm;
pub(crate) mod masking;
pub(crate) mod matmul;
pub(crate) mod parametric;
pub(crate) mod recurrent;
pub(crate) mod row_dot;
pub(crate) mod window_reduce;

use crate::error::Result;
use crate::layers::GpuForm;
use crate::model::gpu::{GpuModel, Recording, Uploader};

/// A tensor on the GPU: its buffer and shape.
pub(crate) type Arg<'a> = (&'a wgpu::Buffer, &'a [usize]);

/// One layer's GPU work.
pub(crate) trait Primitive: Send + Sync {
    /// Record the dispatches computing `out` from `ins` (shapes concrete for this plan).
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()>;

    /// The output is the input's buffer (nothing computed): the executor aliases them.
    fn aliases_input(&self) -> bool {
        false
    }
}

/// The primitive computing `form` for plan layer `index`, its parameters bound through `up`.
pub(crate) fn build(up: &Uploader, index: usize, form: GpuForm<'_>) -> Box<dyn Primitive> {
    use GpuForm as F;
    match form {
        F::Identity => Box::new(combinators::Identity),
        F::MergeTime(f) => Box::new(combinators::MergeTime(build(up, index, *f))),
        F::Permuted { to, inner } => Box::new(combinators::Permuted {
            to,
            inner: build(up, index, *inner),
        }),
        F::ThenRow { inner, activation } => Box::new(combinators::ThenRow {
            inner: build(up, index, *inner),
            act: activation,
        }),
        F::MatMul {
            kernel,
            bias,
            activation,
        } => Box::new(matmul::MatMul {
            kernel: matmul::Matrix::new(up, kernel, bias),
            act: activation,
        }),
        F::GatherMatMul {
            kernel,
            bias,
            activation,
            ..
        } => Box::new(matmul::GatherMatMul {
            layer: index,
            kernel: matmul::Matrix::new(up, kernel, bias),
            act: activation,
        }),
        F::Recurrent(r) => Box::new(recurrent::RecurrentOp(recurrent::Cells::new(up, r))),
        F::Stack(cells) => Box::new(recurrent::Stack(
            cells.iter().map(|r| recurrent::Cells::new(up, r)).collect(),
        )),
        F::Bidirectional(b) => Box::new(recurrent::BidirectionalOp::new(up, b)),
        F::ConvLstm(l) => Box::new(conv_lstm::ConvLstmOp::new(up, index, l)),
        F::Binary(op) => Box::new(binary::Binary(op)),
        F::RowDot { normalize, axes } => Box::new(row_dot::RowDot {
            layer: index,
            normalize,
            axes,
        }),
        F::JointSoftmax(axes) => Box::new(joint_softmax::JointSoftmax { axes }),
        F::Bucketize(b) => Box::new(bucketize::Bucketize::new(up, b)),
        F::GroupNorm(g) => Box::new(group_norm::GroupNorm::new(up, index, g)),
        F::Attention(a) => Box::new(attention::Attention::new(up, index, a)),
        F::Masking(v) => Box::new(masking::Masking(v)),
        F::CategoryEncoding { depth, count } => {
            Box::new(category::CategoryEncoding { depth, count })
        }
        F::Affine {
            mul,
            add,
            axis,
            activation,
        } => Box::new(affine::Affine::new(up, (mul, add), axis, activation)),
        F::Concat { axis } => Box::new(concat::Concat(axis)),
        F::Parametric(p) => Box::new(parametric::Parametric(p)),
        F::Gather => Box::new(gather::Gather(index)),
        F::WeightedGather(_) => Box::new(gather::WeightedGather(index)),
        F::PRelu(alpha) => Box::new(parametric::PRelu::new(up, alpha)),
        F::LayerNorm {
            group,
            eps,
            gamma,
            beta,
        } => Box::new(layer_norm::LayerNorm::new(up, group, eps, gamma, beta)),
        F::Embedding(table) => Box::new(embedding::Embedding::new(up, table)),
        F::WindowReduce { max, masked, .. } => Box::new(window_reduce::WindowReduce {
            layer: index,
            max,
            masked,
        }),
        F::Depthwise {
            depthwise,
            pointwise,
            bias,
            activation,
            ..
        } => {
            let kernels = (depthwise, pointwise, bias);
            Box::new(depthwise::Depthwise::new(up, index, kernels, activation))
        }
    }
}
