// Generates layercake's test fixtures with real TensorFlow.js (@tensorflow/tfjs 4.22.0, pure-JS CPU backend).
//
//   cd tools/tfjs-fixtures && npm ci && node gen.mjs [case ...]
//
// Each case becomes tests/fixtures/<case>/ holding model.json, its weight files and expected.json
// ({"inputs":[{name,shape,dtype,data}], "outputs":[...]}, flat row-major data).
// Weights and inputs come from a seeded PRNG, so a rerun reproduces the same files.
// Styles: "node" (model.json + weights.bin, like tfjs-node's file://), "downloads" (model.json +
// ./model.weights.bin, like the browser download handler), and "converter": the Python tensorflowjs
// package's own writer (write_weights.py, run through write_converter.py) cuts converter shards
// (group{g}-shard{i}of{N}.bin) and quantizes weights (uint8 / uint16 / float16).
// expected.json is always computed by loading the written files back into TF.js, so every
// fixture is also proven loadable by TF.js.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadModelDir, predictBundle, rng } from './tfjs-io.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, '../../tests/fixtures');

/** Replace every weight with seeded values; statistics and scales get plausible ranges. */
function seedWeights(model, seed) {
  const r = rng(seed);
  const values = model.weights.map((w) => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const name = w.originalName;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (name.endsWith('moving_variance')) data[i] = 0.5 + r();
      else if (name.endsWith('gamma')) data[i] = 0.75 + 0.5 * r();
      else data[i] = (r() - 0.5) * 0.8;
    }
    return tf.tensor(data, w.shape, w.dtype);
  });
  model.setWeights(values);
}

/** Seeded inputs for every model input (batch 2); integer inputs get token ids with zero padding. */
function makeInputs(model, seed, spec) {
  const r = rng(seed);
  return model.inputs.map((inp, k) => {
    const shape = inp.shape.map((d) => (d == null ? 2 : d));
    const n = shape.reduce((a, b) => a * b, 1);
    if (inp.dtype === 'int32' || (spec.vocab && model.inputs.length === 1)) {
      const vocab = spec.vocab ?? 10;
      const data = Array.from({ length: n }, () => 1 + Math.floor(r() * (vocab - 1)));
      // Zero padding at the start of row 0 and the end of row 1 exercises masking.
      const steps = shape[1];
      data[0] = 0; data[1] = 0; data[n - 1] = 0;
      if (steps > 4) data[Math.floor(steps / 2)] = 0;
      // A second token input masks another step, so masks that combine differ from each one.
      if (k > 0) data[2 + k] = 0;
      return { name: model.inputNames[k], shape, dtype: 'int32', data };
    }
    const data = Array.from({ length: n }, () => Math.fround((r() - 0.5) * 4));
    // `maskSteps`: whole time steps set to the mask value (0), for the Masking layer.
    const f = shape[shape.length - 1];
    for (const [row, step] of spec.maskSteps ?? []) data.fill(0, (row * shape[1] + step) * f, (row * shape[1] + step + 1) * f);
    return { name: model.inputNames[k], shape, dtype: 'float32', data };
  });
}

async function captureArtifacts(model, includeOptimizer) {
  let artifacts;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer },
  );
  return artifacts;
}

function weightBytes(artifacts) {
  const d = artifacts.weightData;
  const parts = Array.isArray(d) ? d : [d];
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

/** model.json laid out as tfjs-core's (unexported) getModelJSONForModelArtifacts does. */
function modelJson(artifacts, paths) {
  const json = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
  };
  for (const key of ['signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature', 'trainingConfig']) {
    if (artifacts[key] != null) json[key] = artifacts[key];
  }
  return json;
}

function writeTfjsStyle(dir, artifacts, style, extra = {}) {
  const file = style === 'node' ? 'weights.bin' : 'model.weights.bin';
  const manifestPath = style === 'node' ? 'weights.bin' : './model.weights.bin';
  const json = { ...modelJson(artifacts, [manifestPath]), ...extra };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, file), weightBytes(artifacts));
}

/** Hand the artifacts to the Python converter's writer (shards, groups, quantization). */
function writeConverterStyle(dir, artifacts, conv) {
  const staging = fs.mkdtempSync(path.join(OUT, '.staging-'));
  try {
    const json = modelJson(artifacts, ['weights.bin']);
    json.convertedBy = 'TensorFlow.js Converter v4.22.0';
    fs.writeFileSync(path.join(staging, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(staging, 'weights.bin'), weightBytes(artifacts));
    const args = [path.join(HERE, 'write_converter.py'), staging, dir, JSON.stringify(conv)];
    const res = spawnSync('python3', args, { stdio: 'inherit' });
    if (res.status !== 0) throw new Error(`write_converter.py failed for ${dir}`);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * For quantized fixtures: `unquantized.bin` holds the float32 weights before quantization and
 * `dequantized.bin` the values TF.js decoded on load, both in the order of the fixture's manifest,
 * so tests can check layercake's quantizer and dequantizer against the real tools byte for byte.
 */
function writeQuantizationGoldens(dir, artifacts, loaded) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).weightsManifest;
  const names = manifest.flatMap((g) => g.weights.map((w) => w.name));
  const bytes = weightBytes(artifacts);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const original = tf.io.decodeWeights(buffer, artifacts.weightSpecs);
  const decoded = Object.fromEntries(loaded.weights.map((w) => [w.originalName, w.read()]));
  const dump = (get) => Buffer.concat(names.map((n) => ((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))(get(n).dataSync())));
  fs.writeFileSync(path.join(dir, 'unquantized.bin'), dump((n) => original[n]));
  fs.writeFileSync(path.join(dir, 'dequantized.bin'), dump((n) => decoded[n]));
}

// ---------------------------------------------------------------------------------------------
// The cases. Each builds a model; `style` picks the writer; `conv` configures the Python writer.

const L = tf.layers;

function mlpAdam() {
  const m = tf.sequential();
  m.add(L.dense({ units: 16, activation: 'relu', inputShape: [8] }));
  m.add(L.batchNormalization());
  m.add(L.dropout({ rate: 0.2, seed: 7 }));
  m.add(L.dense({ units: 4, activation: 'softmax' }));
  return m;
}

async function trainAdam(m, seed) {
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const r = rng(seed);
  const xs = tf.tensor2d(Array.from({ length: 32 * 8 }, () => r() - 0.5), [32, 8]);
  const labels = Array.from({ length: 32 }, () => Math.floor(r() * 4));
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 4).toFloat();
  await m.fit(xs, ys, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 });
}

function cnn() {
  const m = tf.sequential();
  m.add(L.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', inputShape: [12, 12, 3] }));
  m.add(L.batchNormalization());
  m.add(L.maxPooling2d({ poolSize: 2 }));
  m.add(L.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same' }));
  m.add(L.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, padding: 'valid', activation: 'relu6' }));
  m.add(L.separableConv2d({ filters: 5, kernelSize: 2, padding: 'same', activation: 'elu' }));
  m.add(L.averagePooling2d({ poolSize: 2, padding: 'same' }));
  m.add(L.flatten());
  m.add(L.dense({ units: 5, activation: 'sigmoid' }));
  return m;
}

function convMisc() {
  const m = tf.sequential();
  m.add(L.zeroPadding2d({ padding: [[1, 2], [0, 1]], inputShape: [9, 8, 3] }));
  m.add(L.conv2d({ filters: 6, kernelSize: [3, 2], dilationRate: 2, activation: 'tanh' }));
  m.add(L.cropping2D({ cropping: [[1, 0], [0, 1]] }));
  m.add(L.upSampling2d({ size: [2, 1] }));
  m.add(L.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  m.add(L.upSampling2d({ size: [1, 2], interpolation: 'bilinear' }));
  m.add(L.conv2dTranspose({ filters: 3, kernelSize: 2, strides: 1, padding: 'valid' }));
  m.add(L.globalMaxPooling2d({}));
  m.add(L.rescaling({ scale: 0.5, offset: 0.25 }));
  return m;
}

function convChannelsFirst() {
  const m = tf.sequential();
  m.add(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', dataFormat: 'channelsFirst', inputShape: [3, 9, 9] }));
  // No BatchNormalization(axis: 1) here: TF.js's CPU batchNorm kernel cycles its parameters
  // over the innermost axis instead of broadcasting them along axis 1, so its outputs for that
  // case are not Keras's (layercake follows Keras; see ARCHITECTURE.md).
  m.add(L.maxPooling2d({ poolSize: 2, dataFormat: 'channelsFirst' }));
  m.add(L.conv2d({ filters: 5, kernelSize: 2, strides: 2, padding: 'same', dataFormat: 'channelsFirst', activation: 'relu' }));
  m.add(L.globalAveragePooling2d({ dataFormat: 'channelsFirst' }));
  m.add(L.batchNormalization({ axis: -1 }));
  m.add(L.dense({ units: 3 }));
  return m;
}

function conv1d3d() {
  const seq = L.input({ shape: [20, 3], name: 'seq' });
  let a = L.conv1d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(seq);
  a = L.maxPooling1d({ poolSize: 2 }).apply(a);
  a = L.conv1d({ filters: 4, kernelSize: 2, dilationRate: 2 }).apply(a);
  const a1 = L.globalAveragePooling1d().apply(a);
  const a2 = L.globalMaxPooling1d().apply(L.averagePooling1d({ poolSize: 2, padding: 'same' }).apply(a));
  const vol = L.input({ shape: [6, 6, 6, 2], name: 'vol' });
  let b = L.conv3d({ filters: 3, kernelSize: 2, activation: 'relu' }).apply(vol);
  b = L.maxPooling3d({ poolSize: 2 }).apply(b);
  b = L.averagePooling3d({ poolSize: 2, strides: 1 }).apply(b);
  b = L.flatten().apply(b);
  const joined = L.concatenate().apply([a1, a2, b]);
  const out1 = L.dense({ units: 3, name: 'head' }).apply(joined);
  const out2 = L.dense({ units: 2, activation: 'softmax', name: 'aux' }).apply(a1);
  return tf.model({ inputs: [seq, vol], outputs: [out1, out2] });
}

function mergeReshape() {
  const x = L.input({ shape: [6], name: 'x' });
  const y = L.input({ shape: [6], name: 'y' });
  const shared = L.dense({ units: 6, activation: 'tanh', name: 'shared' });
  const sx = shared.apply(x);
  const sy = shared.apply(y);
  const merged = [
    L.add().apply([sx, sy]),
    L.multiply().apply([sx, sy]),
    L.average().apply([sx, sy]),
    L.maximum().apply([sx, y]),
    L.minimum().apply([x, sy]),
    L.dot({ axes: 1, normalize: true }).apply([sx, sy]),
  ];
  const cat = L.concatenate({ axis: -1 }).apply(merged); // 31 features
  let h = L.dense({ units: 12 }).apply(cat);
  h = L.prelu({}).apply(h);
  h = L.reshape({ targetShape: [3, 4] }).apply(h);
  h = L.permute({ dims: [2, 1] }).apply(h);
  h = L.layerNormalization({ axis: -1 }).apply(h);
  h = L.leakyReLU({ alpha: 0.1 }).apply(h);
  h = L.flatten().apply(h);
  h = L.repeatVector({ n: 3 }).apply(h);
  h = L.dense({ units: 4 }).apply(h);
  h = L.reLU({ maxValue: 0.5 }).apply(h);
  const out1 = L.softmax({ axis: 2 }).apply(h);
  let g = L.elu().apply(L.dense({ units: 5 }).apply(sx));
  g = L.thresholdedReLU({ theta: 0.1 }).apply(g);
  g = L.activation({ activation: 'softplus' }).apply(L.softmax({}).apply(g));
  const out2 = L.batchNormalization({ center: false }).apply(g);
  return tf.model({ inputs: [x, y], outputs: [out1, out2] });
}

const ACTIVATIONS = ['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'tanh', 'softmax',
  'logSoftmax', 'softplus', 'softsign', 'swish', 'gelu', 'mish'];

function activations() {
  const x = L.input({ shape: [10], name: 'x' });
  const trunk = L.dense({ units: 10, name: 'trunk' }).apply(x);
  const heads = ACTIVATIONS.map((a) => L.dense({ units: 4, activation: a, name: `act_${a}` }).apply(trunk));
  return tf.model({ inputs: x, outputs: L.concatenate({ name: 'all' }).apply(heads) });
}

function rnn() {
  const m = tf.sequential();
  m.add(L.embedding({ inputDim: 12, outputDim: 6, maskZero: true, inputLength: 7 }));
  m.add(L.lstm({ units: 5, returnSequences: true }));
  m.add(L.gru({ units: 4, returnSequences: true }));
  m.add(L.bidirectional({ layer: L.simpleRNN({ units: 3, returnSequences: true }), mergeMode: 'concat' }));
  m.add(L.timeDistributed({ layer: L.dense({ units: 2 }) }));
  return m;
}

// A mask made by Embedding passes through the layers that support masking (TF.js's
// supportsMasking) before it reaches the recurrent layers.
function maskChain() {
  const m = tf.sequential();
  m.add(L.embedding({ inputDim: 9, outputDim: 6, maskZero: true, inputLength: 8 }));
  m.add(L.dense({ units: 5 }));
  m.add(L.batchNormalization());
  m.add(L.layerNormalization());
  m.add(L.activation({ activation: 'tanh' }));
  m.add(L.reLU());
  m.add(L.leakyReLU({ alpha: 0.2 }));
  m.add(L.elu());
  m.add(L.prelu());
  // Not Softmax: TF.js adds a mask to its input (`x + (1 - mask) * -1e9`), which fails for a
  // [batch, steps] mask on [batch, steps, features].
  m.add(L.dropout({ rate: 0.3 }));
  m.add(L.gaussianNoise({ stddev: 0.1 }));
  m.add(L.lstm({ units: 4, returnSequences: true }));
  m.add(L.dense({ units: 3 }));
  m.add(L.gru({ units: 2 }));
  return m;
}

// Two masked (mask_zero) token streams concatenated along the features: TF.js ANDs the masks
// (an unmasked input counting as all kept), and the LSTM after it skips the steps either masks.
function maskConcat() {
  const a = tf.input({ shape: [7], dtype: 'int32', name: 'left' });
  const b = tf.input({ shape: [7], dtype: 'int32', name: 'right' });
  const c = tf.input({ shape: [7, 2], name: 'dense_features' });
  const ea = L.embedding({ inputDim: 9, outputDim: 4, maskZero: true }).apply(a);
  const eb = L.embedding({ inputDim: 9, outputDim: 3, maskZero: true }).apply(b);
  const joined = L.concatenate().apply([ea, eb, c]);
  const y = L.lstm({ units: 3, returnSequences: true }).apply(joined);
  return tf.model({ inputs: [a, b, c], outputs: L.gru({ units: 2 }).apply(y) });
}

function rnnMasking() {
  const m = tf.sequential();
  m.add(L.masking({ maskValue: 0, inputShape: [6, 3] }));
  m.add(L.bidirectional({ layer: L.lstm({ units: 3, returnSequences: false }), mergeMode: 'ave' }));
  m.add(L.dense({ units: 2 }));
  return m;
}

// Recurrent options the other fixtures leave out: go_backwards with and without sequences, a
// non-default activation, no bias, and Bidirectional's sum and mul merges.
function rnnOptions() {
  const x = L.input({ shape: [5, 3], name: 'seq' });
  const a = L.simpleRNN({ units: 4, activation: 'relu', goBackwards: true, returnSequences: true }).apply(x);
  const b = L.lstm({ units: 3, goBackwards: true, useBias: false }).apply(a);
  const c = L.bidirectional({ layer: L.gru({ units: 2, returnSequences: true }), mergeMode: 'sum' }).apply(x);
  const d = L.bidirectional({ layer: L.lstm({ units: 2 }), mergeMode: 'mul' }).apply(c);
  return tf.model({ inputs: x, outputs: [b, d, L.flatten().apply(c)] });
}

// The generic RNN layer over cells: one LSTMCell, and StackedRNNCells (SimpleRNNCell then
// GRUCell) run backwards, with masked steps.
function rnnCells() {
  const x = L.input({ shape: [5, 3], name: 'seq' });
  const m = L.masking({ maskValue: 0 }).apply(x);
  const a = L.rnn({ cell: L.lstmCell({ units: 4 }), returnSequences: true }).apply(m);
  const stacked = L.stackedRNNCells({ cells: [L.simpleRNNCell({ units: 3 }), L.gruCell({ units: 2 })] });
  const b = L.rnn({ cell: stacked, goBackwards: true, returnSequences: true }).apply(a);
  return tf.model({ inputs: x, outputs: L.flatten().apply(b) });
}

// Preprocessing layers and Conv3DTranspose: CenterCrop (odd and even margins; a width margin of
// 1 exercises TF.js's `wBuffer = 1` rule), Resizing (bilinear and nearest, with and without
// crop_to_aspect_ratio, which in TF.js only switches corner alignment), CategoryEncoding in its
// three modes.
//
// TF.js 4.22 cannot run Resizing (nor CenterCrop's upsizing branch) inside a model: call()
// resizes `inputs` as passed, an array, and throws. The expected outputs are therefore computed
// by applying each layer to concrete tensors (`direct`), which is TF.js's own layer code on the
// same weights; the model is saved as usual.
function preprocessing() {
  const img = L.input({ shape: [7, 9, 2], name: 'img' });
  const tokens = L.input({ shape: [4], name: 'tokens', dtype: 'int32' });
  const tok = L.input({ shape: [1], name: 'tok', dtype: 'int32' });
  const vol = L.input({ shape: [3, 4, 3, 2], name: 'vol' });
  // CenterCrop and CategoryEncoding write their output shape into their input's shape array
  // (computeOutputShape mutates it), corrupting an InputLayer's batch_input_shape: each gets a
  // private Reshape (which builds a fresh shape array) in front.
  const own = (x) => L.reshape({ targetShape: x.shape.slice(1) });
  const chains = [
    [img, [own(img), L.centerCrop({ height: 4, width: 5 })]],
    [img, [own(img), L.centerCrop({ height: 6, width: 8 })]],
    [img, [L.resizing({ height: 5, width: 6 })]],
    [img, [L.resizing({ height: 11, width: 4, interpolation: 'nearest' })]],
    [img, [L.resizing({ height: 5, width: 13, cropToAspectRatio: true })]],
    [tokens, [own(tokens), L.categoryEncoding({ numTokens: 6, outputMode: 'multiHot' })]],
    [tokens, [own(tokens), L.categoryEncoding({ numTokens: 6, outputMode: 'count' })]],
    [tok, [own(tok), L.categoryEncoding({ numTokens: 5, outputMode: 'oneHot' })]],
    [vol, [L.conv3dTranspose({ filters: 2, kernelSize: 2, strides: 2, padding: 'same', activation: 'relu' })]],
    [vol, [L.conv3dTranspose({ filters: 3, kernelSize: [2, 3, 2], padding: 'valid' })]],
  ];
  const inputs = [img, tokens, tok, vol];
  const outs = chains.map(([x, layers]) => layers.reduce((t, l) => l.apply(t), x));
  const model = tf.model({ inputs, outputs: outs });
  model.direct = (xs) => chains.map(([x, layers]) => layers.reduce((t, l) => l.apply(t), xs[inputs.indexOf(x)]));
  return model;
}

// Several outputs per layer: an encoder LSTM returning its states, a decoder LSTM started from
// them (initialState), a GRU returning sequences and state, Bidirectional without merging and
// Bidirectional returning the states of both directions.
function rnnStates() {
  const enc = L.input({ shape: [5, 3], name: 'enc' });
  const dec = L.input({ shape: [4, 2], name: 'dec' });
  const [encOut, h, c] = L.lstm({ units: 4, returnState: true }).apply(enc);
  const decOut = L.lstm({ units: 4, returnSequences: true }).apply(dec, { initialState: [h, c] });
  const [seq, gh] = L.gru({ units: 3, returnSequences: true, returnState: true }).apply(enc);
  const [f, b] = L.bidirectional({ layer: L.simpleRNN({ units: 2, returnSequences: true }), mergeMode: null }).apply(enc);
  const states = L.bidirectional({ layer: L.lstm({ units: 2, returnState: true }), mergeMode: 'concat' }).apply(enc);
  return tf.model({ inputs: [enc, dec], outputs: [decOut, encOut, seq, gh, f, b, ...states] });
}

// ConvLSTM2D: same padding with sequences, then valid padding with strides, backwards.
function convLstm() {
  const x = L.input({ shape: [3, 6, 5, 2], name: 'frames' });
  const a = L.convLstm2d({ filters: 3, kernelSize: 3, padding: 'same', returnSequences: true }).apply(x);
  const b = L.convLstm2d({ filters: 2, kernelSize: [2, 3], strides: 2, padding: 'valid', goBackwards: true }).apply(a);
  return tf.model({ inputs: x, outputs: [a, b] });
}

function nested() {
  const inner = tf.sequential({ name: 'inner' });
  inner.add(L.dense({ units: 4, activation: 'relu', inputShape: [5], name: 'in_dense' }));
  inner.add(L.dense({ units: 3, name: 'in_out' }));
  const a = L.input({ shape: [5], name: 'a' });
  const b = L.input({ shape: [5], name: 'b' });
  const sum = L.add().apply([inner.apply(a), inner.apply(b)]);
  return tf.model({ inputs: [a, b], outputs: L.dense({ units: 2, name: 'final' }).apply(sum) });
}

// Attention-style Dot layers on rank-3 inputs: contracted axes (2, 2), (2, 1) and (1, 1), and a
// normalized (cosine) one.
function dotAttention() {
  const q = L.input({ shape: [4, 6], name: 'q' });
  const k = L.input({ shape: [5, 6], name: 'k' });
  const v = L.input({ shape: [5, 3], name: 'v' });
  const qp = L.dense({ units: 6, name: 'proj' }).apply(q);
  const scores = L.softmax({ axis: -1 }).apply(L.dot({ axes: [2, 2] }).apply([qp, k]));
  const context = L.dot({ axes: [2, 1] }).apply([scores, v]);
  const cosine = L.dot({ axes: 2, normalize: true }).apply([q, k]);
  const gram = L.dot({ axes: [1, 1] }).apply([qp, L.dense({ units: 2, name: 'side' }).apply(q)]);
  const head = L.dense({ units: 2, name: 'head' }).apply(L.flatten().apply(context));
  return tf.model({ inputs: [q, k, v], outputs: [context, cosine, gram, head] });
}

// Teachable Machine's image model layout: a Sequential whose first layer is a nested Sequential
// whose first layer is a functional Model holding the InputLayer (a truncated MobileNet there),
// followed by a nested Sequential head.
function teachable() {
  const x = L.input({ shape: [8, 8, 3], name: 'input_1' });
  let y = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'Conv1' }).apply(x);
  y = L.batchNormalization({ name: 'bn_Conv1' }).apply(y);
  y = L.reLU({ maxValue: 6, name: 'Conv1_relu' }).apply(y);
  y = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(y);
  y = L.globalAveragePooling2d({ name: 'pool' }).apply(y);
  const truncated = tf.model({ inputs: x, outputs: y, name: 'model1' });
  const body = tf.sequential({ name: 'sequential_1', layers: [truncated] });
  const head = tf.sequential({ name: 'sequential_3' });
  head.add(L.dense({ units: 5, activation: 'relu', inputShape: [4], name: 'dense_Dense1' }));
  head.add(L.dense({ units: 3, activation: 'softmax', name: 'dense_Dense2' }));
  return tf.sequential({ name: 'sequential_4', layers: [body, head] });
}

// channels_first throughout, with asymmetric zero padding and both pooling kinds.
function channelsFirstPad() {
  const cf = { dataFormat: 'channelsFirst' };
  const m = tf.sequential();
  m.add(L.zeroPadding2d({ padding: [[1, 0], [0, 1]], inputShape: [3, 12, 12], ...cf }));
  m.add(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', ...cf }));
  m.add(L.maxPooling2d({ poolSize: 2, ...cf }));
  m.add(L.conv2d({ filters: 5, kernelSize: [2, 3], padding: 'valid', ...cf }));
  m.add(L.averagePooling2d({ poolSize: 2, ...cf }));
  m.add(L.flatten());
  m.add(L.dense({ units: 3 }));
  return m;
}

function mlp() {
  const m = tf.sequential();
  m.add(L.dense({ units: 40, activation: 'relu', inputShape: [30] }));
  m.add(L.dense({ units: 20, activation: 'tanh' }));
  m.add(L.dense({ units: 5 }));
  return m;
}

export const CASES = {
  mlp_adam: { build: mlpAdam, style: 'node', train: trainAdam, metadata: { purpose: 'optimizer state' } },
  cnn: { build: cnn, style: 'downloads' },
  conv_misc: { build: convMisc, style: 'node' },
  conv_channels_first: { build: convChannelsFirst, style: 'downloads' },
  conv1d_3d: { build: conv1d3d, style: 'node' },
  merge_reshape: { build: mergeReshape, style: 'node' },
  activations: { build: activations, style: 'downloads' },
  rnn: { build: rnn, style: 'node', vocab: 12 },
  rnn_masking: { build: rnnMasking, style: 'node', maskSteps: [[0, 0], [0, 3], [1, 5]] },
  nested: { build: nested, style: 'downloads' },
  // Converter shards: 1000-byte shards so weights straddle several files; two groups.
  sharded: { build: mlp, style: 'converter', conv: { shard_size: 1000, groups: [['kernel$'], ['.*']] } },
  quant_uint8: { build: cnn, style: 'converter', conv: { quantize: { uint8: ['*'] } } },
  quant_uint16: { build: mlp, style: 'converter', conv: { shard_size: 4096, quantize: { uint16: ['*/kernel'] } } },
  quant_float16: { build: convMisc, style: 'converter', conv: { quantize: { float16: ['*'] } } },
  dot_attention: { build: dotAttention, style: 'node' },
  rnn_options: { build: rnnOptions, style: 'downloads' },
  rnn_cells: { build: rnnCells, style: 'node', maskSteps: [[0, 1], [1, 4]] },
  preprocessing: { build: preprocessing, style: 'node', vocab: 5 },
  rnn_states: { build: rnnStates, style: 'node' },
  conv_lstm: { build: convLstm, style: 'node' },
  teachable: { build: teachable, style: 'downloads' },
  mask_chain: { build: maskChain, style: 'node', vocab: 9 },
  mask_concat: { build: maskConcat, style: 'node', vocab: 9 },
  channels_first_pad: { build: channelsFirstPad, style: 'downloads' },
};

/** Expected outputs of a model whose layers TF.js can only run on concrete tensors. */
function directBundle(model, inputs) {
  const xs = inputs.map((t) => tf.tensor(t.data, t.shape, t.dtype));
  const outputs = model.direct(xs).map((y, k) => ({
    name: model.outputNames[k], shape: y.shape, dtype: y.dtype, data: Array.from(y.dataSync()),
  }));
  return { inputs, outputs };
}

async function generate(name, spec, seed) {
  const dir = path.join(OUT, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const model = spec.build();
  seedWeights(model, seed);
  if (spec.train) await spec.train(model, seed + 1);
  const artifacts = await captureArtifacts(model, Boolean(spec.train));
  if (spec.metadata) artifacts.userDefinedMetadata = spec.metadata;
  if (spec.style === 'converter') writeConverterStyle(dir, artifacts, spec.conv);
  else writeTfjsStyle(dir, artifacts, spec.style);
  const inputs = makeInputs(model, seed + 2, spec);
  const loaded = await loadModelDir(dir);
  if (spec.conv?.quantize) writeQuantizationGoldens(dir, artifacts, loaded);
  const bundle = model.direct ? directBundle(model, inputs) : predictBundle(loaded, inputs);
  const expected = { generator: `@tensorflow/tfjs ${tf.version.tfjs} (${tf.getBackend()})`, ...bundle };
  // TF.js cannot run this model as a whole (its outputs come from its layers one by one).
  if (model.direct) expected.tfjs_predicts_model = false;
  fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected));
  console.log(`${name}: ${spec.style}, ${model.weights.length} weights, outputs ${expected.outputs.map((o) => `[${o.shape}]`).join(' ')}`);
}

async function main() {
  await tf.setBackend('cpu');
  const wanted = process.argv.slice(2);
  const names = wanted.length ? wanted : Object.keys(CASES);
  let seed = 1000;
  for (const name of Object.keys(CASES)) {
    seed += 100;
    if (names.includes(name)) await generate(name, CASES[name], seed);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
