//! Dense: `activation(x · kernel + bias)` over the last axis, for inputs of any rank.

use super::{one, Activation, Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct Dense {
    name: String,
    kernel: Tensor,
    bias: Option<Tensor>,
    activation: Activation,
}

impl Layer for Dense {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let mut s = inputs[0].clone();
        *s.last_mut()
            .ok_or_else(|| Error::Model(format!("layer '{}': scalar input", self.name)))? =
            Some(self.kernel.shape[1]);
        Ok(s)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_with(inputs, None)
    }
    fn forward_then(&self, inputs: &[&Tensor], then: &super::RowFn<'_>) -> Option<Result<Tensor>> {
        Some(self.forward_with(inputs, Some(then)))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::MatMul {
            kernel: &self.kernel,
            bias: self.bias.as_ref(),
            activation: self.activation,
        })
    }
}

impl Dense {
    /// [`Layer::forward`], `then` run on the output after the bias and activation.
    fn forward_with(&self, inputs: &[&Tensor], then: Option<&super::RowFn<'_>>) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let (k, n) = (self.kernel.shape[0], self.kernel.shape[1]);
        if x.shape.last() != Some(&k) {
            return Err(Error::Model(format!(
                "layer '{}': input's last dimension is {:?}, the kernel expects {k}",
                self.name,
                x.shape.last()
            )));
        }
        let m = x.data.len() / k.max(1);
        let mut out = vec![0.0; m * n];
        cpu::matmul(&x.data, &self.kernel.data, &mut out, m, k, n);
        if let Some(b) = &self.bias {
            cpu::add_bias(&mut out, &b.data);
        }
        self.activation.apply(&mut out, n);
        if let Some(then) = then {
            then(&mut out);
        }
        let mut shape = x.shape.clone();
        *shape.last_mut().expect("rank ≥ 1") = n;
        Tensor::new(shape, out)
    }
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let units = ctx.usize("units")?;
    let input = ctx.input_dim(-1)?;
    let kernel = ctx.weight("kernel", &[input, units])?;
    let bias = if ctx.bool_or("use_bias", true) {
        Some(ctx.weight("bias", &[units])?)
    } else {
        None
    };
    Ok(Box::new(Dense {
        name: ctx.name.to_string(),
        kernel,
        bias,
        activation: ctx.activation()?,
    }))
}
