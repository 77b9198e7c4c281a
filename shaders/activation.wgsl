// Element-wise activation functions with TF.js's formulas (spec §6.1). This file is a prelude:
// it is prepended to the kernels that apply activations. Ids match gpu::ops::activation_id.
fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

// erf by Abramowitz–Stegun 7.1.26, the polynomial TF.js's CPU kernel uses.
fn erf_as(x: f32) -> f32 {
    let s = sign(x);
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * ax);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-ax * ax);
    return s * y;
}

// Parameterized activations (ids 14-17), falling back to activation() for the others.
fn activation_p(x: f32, id: u32, p: f32) -> f32 {
    switch id {
        case ACT_RELU_MAX: { return min(max(x, 0.0), p); }               // ReLU with max_value
        case ACT_LEAKY_RELU_ALPHA: { return select(x, p * x, x < 0.0); }          // LeakyReLU(alpha)
        case ACT_ELU_ALPHA: { return select(p * (exp(x) - 1.0), x, x > 0.0); } // ELU(alpha)
        case ACT_THRESHOLDED: { return select(0.0, x, x > p); }              // ThresholdedReLU(theta)
        default: { return activation(x, id); }
    }
}

fn activation(x: f32, id: u32) -> f32 {
    switch id {
        case ACT_LINEAR: { return x; }                                  // linear (softmax: separate kernel)
        case ACT_RELU: { return max(x, 0.0); }                        // relu
        case ACT_RELU6: { return clamp(x, 0.0, 6.0); }                 // relu6
        case ACT_ELU: { return select(exp(x) - 1.0, x, x > 0.0); }   // elu
        case ACT_SELU: { return select(1.7580993408473768 * (exp(x) - 1.0), 1.0507009873554805 * x, x > 0.0); } // selu
        case ACT_SIGMOID: { return sigmoid(x); }
        case ACT_HARD_SIGMOID: { return clamp(0.2 * x + 0.5, 0.0, 1.0); }     // hard_sigmoid (TF.js / Keras 2)
        case ACT_HARD_SIGMOID_KERAS3: { return clamp(x / 6.0 + 0.5, 0.0, 1.0); }     // hard_sigmoid (Keras 3)
        case ACT_TANH: { return tanh(x); }
        case ACT_SOFTPLUS: { return softplus(x); }
        case ACT_SOFTSIGN: { return x / (abs(x) + 1.0); }                // softsign
        case ACT_SWISH: { return x * sigmoid(x); }                    // swish / silu
        case ACT_GELU: { return 0.5 * x * (1.0 + erf_as(x * 0.7071067811865476)); } // gelu
        case ACT_MISH: { return x * tanh(softplus(x)); }             // mish
        // Keras 3 activations (ids 14-17 are the parameterized ones above).
        case ACT_EXPONENTIAL: { return exp(x); }                            // exponential
        case ACT_HARD_SHRINK: { return select(0.0, x, abs(x) > 0.5); }      // hard_shrink
        case ACT_HARD_SILU: { return x * clamp(x + 3.0, 0.0, 6.0) / 6.0; } // hard_silu
        case ACT_HARD_TANH: { return clamp(x, -1.0, 1.0); }               // hard_tanh
        case ACT_LEAKY_RELU: { return select(x, 0.2 * x, x < 0.0); }       // leaky_relu
        case ACT_LOG_SIGMOID: { return -softplus(-x); }                     // log_sigmoid
        case ACT_SOFT_SHRINK: { return x - clamp(x, -0.5, 0.5); }           // soft_shrink
        case ACT_SPARSE_PLUS: { return select(select(0.25 * (x + 1.0) * (x + 1.0), x, x >= 1.0), 0.0, x <= -1.0); } // sparse_plus
        case ACT_SPARSE_SIGMOID: { return clamp((x + 1.0) * 0.5, 0.0, 1.0); }  // sparse_sigmoid
        case ACT_SQUAREPLUS: { return (x + sqrt(x * x + 4.0)) * 0.5; }     // squareplus
        case ACT_TANH_SHRINK: { return x - tanh(x); }                       // tanh_shrink
        case ACT_GELU_NEW: { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); } // gelu_new (TF.js)
        default: { return x; }
    }
}
