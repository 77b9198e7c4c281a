// Differential test models: draws random TF.js 4.22 layers models (Sequential chains and
// functional graphs with branches and merges) from seeded configurations, saves each as TF.js
// writes it (model.json + weights.bin), and records TF.js's own predictions on seeded inputs.
//
//   node random-models.mjs OUT_DIR FIRST COUNT
//
// Model k (FIRST <= k < FIRST + COUNT) is drawn from seed k alone, so any one regenerates by
// itself. Each OUT_DIR/m<k>/ holds model.json, weights.bin and expected.json
// ({generator, description, inputs, outputs}); a one-line description of every model goes to
// stdout. Draws whose layers TF.js refuses (shapes that do not fit) are redrawn; models TF.js
// cannot predict, or predicts non-finite values for, are skipped and listed as such.
//
// Not drawn, because TF.js 4.22's own kernels disagree with Keras there (layercake follows
// Keras, see ARCHITECTURE.md): BatchNormalization on an axis other than the last (the CPU
// batchNorm kernel cycles its parameters over the innermost axis), and 3-D `same` padding where
// the total padding is negative (TF.js does not clamp it at 0 as it does in 1-D and 2-D), and
// SeparableConv2D channels_first with a bias (TF.js runs it in NHWC, then adds the bias reshaped
// to [1, filters, 1, 1], i.e. along the height: it throws unless height = filters, and then
// adds bias[h] to row h), and a mask reaching a layer through one that does not support
// masking: TF.js's `execute` keeps the last mask it saw in the `kwargs` object it reuses for every
// later layer, so a recurrent layer after Masking → Conv1D is masked in TF.js (Keras drops the
// mask at Conv1D, and so does layercake).
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { loadModelDir, predictBundle, rng } from './tfjs-io.mjs';

const L = tf.layers;

/** The shared PRNG over a spread seed, so neighbouring model numbers draw unrelated streams. */
const seeded = (seed) => rng((seed * 2654435761) >>> 0);

const ACTIVATIONS = ['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'tanh',
  'softplus', 'softsign', 'swish', 'mish', 'gelu', 'softmax', 'logSoftmax'];

/** A drawing context: pick helpers over one seeded stream. */
function drawer(seed) {
  const r = seeded(seed);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const chance = (p) => r() < p;
  return { r, int, pick, chance };
}

/** Layer factories by input rank (batch excluded): each returns [description, layer] or null. */
function candidates(d, shape) {
  const { int, pick, chance } = d;
  const act = () => pick(ACTIVATIONS);
  const rank = shape.length;
  const out = [];
  const add = (desc, make) => out.push([desc, make]);
  if (rank >= 1) {
    const a = act(), units = int(1, 7), useBias = chance(0.8);
    add(`Dense(${units},${a}${useBias ? '' : ',nobias'})`, () => L.dense({ units, activation: a, useBias }));
    add('BatchNorm(-1)', () => L.batchNormalization({ axis: -1, epsilon: pick([1e-3, 0.1]), center: chance(0.8), scale: chance(0.8) }));
    add('LayerNorm', () => L.layerNormalization({ axis: -1, center: chance(0.8), scale: chance(0.8) }));
    const b = act();
    add(`Activation(${b})`, () => L.activation({ activation: b }));
    add('ReLU', () => L.reLU({ maxValue: chance(0.5) ? 1.5 : null }));
    add('LeakyReLU', () => L.leakyReLU({ alpha: pick([0.1, 0.3]) }));
    add('ELU', () => L.elu({ alpha: pick([0.5, 1.0]) }));
    add('PReLU', () => L.prelu({}));
    add('ThresholdedReLU', () => L.thresholdedReLU({ theta: pick([0.1, 0.5]) }));
    add('Dropout', () => L.dropout({ rate: 0.4 }));
  }
  if (rank === 1) {
    const n = int(2, 4);
    add(`RepeatVector(${n})`, () => L.repeatVector({ n }));
    if (shape[0] % 2 === 0) add('Reshape(2,-1)', () => L.reshape({ targetShape: [2, shape[0] / 2] }));
  }
  if (rank >= 2) {
    add('Flatten', () => L.flatten());
    add('Softmax', () => L.softmax({ axis: -1 }));
  }
  if (rank === 2) {
    const f = int(1, 5), k = int(1, 3), s = int(1, 2), dl = s === 1 ? int(1, 2) : 1;
    const pad = pick(['valid', 'same', 'causal']), a = act();
    add(`Conv1D(${f},k${k},s${s},d${dl},${pad},${a})`, () => L.conv1d({ filters: f, kernelSize: k, strides: s, dilationRate: dl, padding: pad, activation: a }));
    const p = int(1, 3), ps = int(1, 3), pp = pick(['valid', 'same']);
    add(`MaxPool1D(${p},${ps},${pp})`, () => L.maxPooling1d({ poolSize: p, strides: ps, padding: pp }));
    add(`AvgPool1D(${p},${ps},${pp})`, () => L.averagePooling1d({ poolSize: p, strides: ps, padding: pp }));
    add('GlobalAvgPool1D', () => L.globalAveragePooling1d());
    add('GlobalMaxPool1D', () => L.globalMaxPooling1d());
    const cls = pick(['lstm', 'gru', 'simpleRNN']), u = int(1, 4), seq = chance(0.5), back = chance(0.3);
    // Row-wise activations (softmax, logSoftmax) in recurrent cells are refused by layercake.
    const ra = chance(0.3) ? pick(ACTIVATIONS.filter((a) => !/oftmax/.test(a))) : 'tanh', rr = cls === 'simpleRNN' || chance(0.7) ? 'hardSigmoid' : pick(['sigmoid', 'relu']);
    add(`${cls}(${u}${seq ? ',seq' : ''}${back ? ',back' : ''},${ra},${rr})`, () => L[cls]({ units: u, returnSequences: seq, goBackwards: back, activation: ra, recurrentActivation: rr, useBias: chance(0.8), unitForgetBias: chance(0.5), resetAfter: false }));
    // Masking straight before a recurrent layer: see the header on TF.js's sticky masks.
    // After it, no layer that reads a mask is drawn (d.masked).
    add(`Masking(0) ${cls}(${u})`, () => ({ apply: (x) => { const y = L[cls]({ units: u, returnSequences: seq }).apply(L.masking({ maskValue: 0 }).apply(x)); d.masked = true; return y; } }));
    add('GaussianNoise', () => L.gaussianNoise({ stddev: 0.2 }));
    add('SpatialDropout1D', () => L.spatialDropout1d({ rate: 0.3 }));
    const mode = pick(['concat', 'sum', 'mul', 'ave']);
    add(`Bidirectional(${cls}(${u}),${mode})`, () => L.bidirectional({ layer: L[cls]({ units: u, returnSequences: seq }), mergeMode: mode }));
    add(`TimeDistributed(Dense(${u}))`, () => L.timeDistributed({ layer: L.dense({ units: u }) }));
    add('Permute(2,1)', () => L.permute({ dims: [2, 1] }));
  }
  if (rank === 3) {
    const cf = chance(0.4) ? 'channelsFirst' : 'channelsLast';
    const kh = int(1, 3), kw = int(1, 3), s = int(1, 2), pad = pick(['valid', 'same']), a = act();
    const f = int(1, 5), dl = s === 1 && chance(0.3) ? 2 : 1, tag = cf === 'channelsFirst' ? ',cf' : '';
    add(`Conv2D(${f},${kh}x${kw},s${s},d${dl},${pad},${a}${tag})`, () => L.conv2d({ filters: f, kernelSize: [kh, kw], strides: s, dilationRate: dl, padding: pad, activation: a, dataFormat: cf }));
    add(`Conv2DTranspose(${f},${kh}x${kw},s${s},${pad}${tag})`, () => L.conv2dTranspose({ filters: f, kernelSize: [kh, kw], strides: s, padding: pad, dataFormat: cf }));
    add(`DepthwiseConv2D(${kh}x${kw},s${s},${pad}${tag})`, () => L.depthwiseConv2d({ kernelSize: [kh, kw], strides: s, padding: pad, depthMultiplier: int(1, 2), dataFormat: cf }));
    // channels_first without bias: see the header.
    add(`SeparableConv2D(${f},${kh}x${kw},${pad}${tag})`, () => L.separableConv2d({ filters: f, kernelSize: [kh, kw], padding: pad, dataFormat: cf, useBias: cf === 'channelsLast' }));
    const p = int(1, 3), ps = int(1, 3), pp = pick(['valid', 'same']);
    add(`MaxPool2D(${p},${ps},${pp}${tag})`, () => L.maxPooling2d({ poolSize: p, strides: ps, padding: pp, dataFormat: cf }));
    add(`AvgPool2D(${p},${ps},${pp}${tag})`, () => L.averagePooling2d({ poolSize: [p, int(1, 3)], strides: ps, padding: pp, dataFormat: cf }));
    add(`GlobalAvgPool2D${tag}`, () => L.globalAveragePooling2d({ dataFormat: cf }));
    add(`GlobalMaxPool2D${tag}`, () => L.globalMaxPooling2d({ dataFormat: cf }));
    const zp = [[int(0, 2), int(0, 2)], [int(0, 2), int(0, 2)]];
    add(`ZeroPadding2D(${JSON.stringify(zp)}${tag})`, () => L.zeroPadding2d({ padding: zp, dataFormat: cf }));
    const cr = [[int(0, 1), int(0, 1)], [int(0, 1), int(0, 1)]];
    add(`Cropping2D(${JSON.stringify(cr)}${tag})`, () => L.cropping2d({ cropping: cr, dataFormat: cf }));
    const interp = pick(['nearest', 'bilinear']);
    add(`UpSampling2D(${interp}${tag})`, () => L.upSampling2d({ size: [int(1, 2), int(1, 2)], interpolation: interp, dataFormat: cf }));
  }
  if (rank === 4) {
    // Strides at most the kernel: see the header on 3-D `same` padding.
    const k = [int(1, 3), int(1, 3), int(1, 3)], s = int(1, Math.min(...k)), pad = pick(['valid', 'same']), a = act();
    const f = int(1, 4), cf = chance(0.3) ? 'channelsFirst' : 'channelsLast', tag = cf === 'channelsFirst' ? ',cf' : '';
    add(`Conv3D(${f},${k.join('x')},s${s},${pad},${a}${tag})`, () => L.conv3d({ filters: f, kernelSize: k, strides: s, padding: pad, activation: a, dataFormat: cf }));
    const p = int(1, 2), ps = int(1, p);
    add(`MaxPool3D(${p},${ps},${pad}${tag})`, () => L.maxPooling3d({ poolSize: p, strides: ps, padding: pad, dataFormat: cf }));
    add(`AvgPool3D(${p},${ps},${pad}${tag})`, () => L.averagePooling3d({ poolSize: p, strides: ps, padding: pad, dataFormat: cf }));
  }
  // Layers that read the mask TF.js keeps in `kwargs` (see the header).
  const readsMask = /^(lstm|gru|simpleRNN|Bidirectional|TimeDistributed|Softmax|Masking)/;
  // In branches, TF.js's execution order decides which branch the kept mask reaches: no
  // Masking there.
  if (d.branching) return out.filter(([desc]) => !desc.startsWith('Masking'));
  return d.masked ? out.filter(([desc]) => !readsMask.test(desc)) : out;
}

const INPUTS = [[6], [5, 3], [6, 4], [6, 6, 2], [7, 5, 3], [3, 6, 6], [4, 5, 4, 2]];

/** Append up to `n` layers to `x`, each drawn until TF.js accepts it. */
function chain(d, x, n, desc) {
  for (let i = 0; i < n; i++) {
    const options = candidates(d, x.shape.slice(1));
    for (let tries = 0; tries < 8; tries++) {
      const [what, make] = d.pick(options);
      try {
        const y = make().apply(x);
        if (y.shape.slice(1).some((v) => v == null || v <= 0) || y.shape.reduce((a, b) => a * (b ?? 1), 1) > 4096) continue;
        x = y;
        desc.push(what);
        break;
      } catch (e) {
        // a layer that does not fit this shape: draw another
      }
    }
  }
  return x;
}

/** Random model `k`: a Sequential-like chain, or a functional graph with two branches merged. */
function draw(k) {
  const d = drawer(k);
  const shape = d.pick(INPUTS);
  const input = L.input({ shape, name: 'x' });
  const desc = [`in[${shape}]`];
  let out;
  if (d.chance(0.6)) {
    out = chain(d, input, d.int(2, 7), desc);
  } else {
    const trunk = chain(d, input, d.int(0, 2), desc);
    const a = [], b = [];
    d.branching = true;
    const ya = chain(d, trunk, d.int(1, 3), a);
    const yb = chain(d, trunk, d.int(0, 2), b);
    d.branching = false;
    const ways = d.int(2, 3);
    const branches = [ya, yb, trunk].slice(0, ways);
    const same = branches.every((t) => JSON.stringify(t.shape) === JSON.stringify(ya.shape));
    const op = same ? d.pick(['add', 'multiply', 'average', 'maximum', 'minimum', 'concatenate']) : 'concatenate';
    desc.push(`{${a.join(' ')} | ${b.join(' ')}${ways === 3 ? ' | trunk' : ''}}`);
    try {
      out = (op === 'concatenate' ? L.concatenate({ axis: -1 }) : L[op]()).apply(branches);
      desc.push(`${op}×${ways}`);
    } catch (e) {
      out = ya;
      desc.push('(branch a)');
    }
    out = chain(d, out, d.int(0, 2), desc);
  }
  return { model: tf.model({ inputs: input, outputs: out }), description: desc.join(' ') };
}

/** Seeded weights (plausible statistics), as the fixtures' generator seeds them. */
function seedWeights(model, k) {
  const r = seeded(k + 7919);
  model.setWeights(model.weights.map((w) => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (w.originalName.endsWith('moving_variance')) data[i] = 0.5 + r();
      else if (w.originalName.endsWith('gamma')) data[i] = 0.75 + 0.5 * r();
      else data[i] = (r() - 0.5) * 1.2;
    }
    return tf.tensor(data, w.shape, w.dtype);
  }));
}

async function save(model, dir) {
  await model.save(tf.io.withSaveHandler(async (a) => {
    fs.mkdirSync(dir, { recursive: true });
    const json = {
      modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy,
      convertedBy: a.convertedBy, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

async function one(out, k) {
  const { model, description } = draw(k);
  seedWeights(model, k);
  const dir = path.join(out, `m${k}`);
  fs.rmSync(dir, { recursive: true, force: true });
  await save(model, dir);
  const r = seeded(k + 104729);
  const inputs = model.inputs.map((inp) => {
    const shape = [2, ...inp.shape.slice(1)];
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Array.from({ length: n }, () => Math.fround((r() - 0.5) * 4));
    // Sequences: a few whole steps of zeros, for Masking(0) to mask.
    if (shape.length === 3) for (const [row, step] of [[0, 0], [1, shape[1] - 1], [1, 1]]) data.fill(0, (row * shape[1] + step) * shape[2], (row * shape[1] + step + 1) * shape[2]);
    return { name: model.inputNames[0], shape, dtype: 'float32', data };
  });
  try {
    const loaded = await loadModelDir(dir);
    const bundle = predictBundle(loaded, inputs);
    if (!bundle.outputs.every((o) => o.data.every(Number.isFinite))) throw new Error('non-finite outputs');
    const expected = { generator: `@tensorflow/tfjs ${tf.version.tfjs} (${tf.getBackend()})`, description, ...bundle };
    fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected));
    console.log(`m${k}: ${description}`);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`m${k}: skipped (${e.message.split('\n')[0]}): ${description}`);
  }
}

async function main() {
  await tf.setBackend('cpu');
  const [out, first, count] = [process.argv[2], Number(process.argv[3] ?? 0), Number(process.argv[4] ?? 10)];
  for (let k = first; k < first + count; k++) await one(out, k);
}

main().catch((e) => { console.error(e); process.exit(1); });
