// Shared by gen.mjs and check.mjs: a file-reading IOHandler for real TF.js, and prediction bundles.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';

/** Load `dir/model.json` (any style: weights.bin, ./model.weights.bin or converter shards) with tf.loadLayersModel. */
export async function loadModelDir(dir, options = {}) {
  const handler = {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
        }
        const all = Buffer.concat(buffers);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
      });
    },
  };
  return tf.loadLayersModel(handler, { strict: true, ...options });
}

/** Run `inputs` (the fixtures' tensor JSON) through `model`; returns {inputs, outputs} in the same form. */
export function predictBundle(model, inputs) {
  const xs = inputs.map((t) => tf.tensor(t.data, t.shape, t.dtype));
  let ys = model.predict(xs.length === 1 ? xs[0] : xs);
  if (!Array.isArray(ys)) ys = [ys];
  const outputs = ys.map((y, k) => ({
    name: model.outputNames[k],
    shape: y.shape,
    dtype: y.dtype,
    data: Array.from(y.dataSync()),
  }));
  return { inputs, outputs };
}

/** mulberry32: a small seeded PRNG, so fixtures and random models are reproducible. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
