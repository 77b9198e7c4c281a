// Published TF.js layers models that no one here wrote, with real TF.js's predictions:
// nsfwjs 4.3.0's MobileNetV2 (224×224) and InceptionV3 (299×299) image classifiers (Keras 2
// exports, uint8-quantized, no `format` / `generatedBy` keys), which the npm package ships as
// JavaScript modules: model.json as an object, each weight shard as a base64 string.
//
//   node published.mjs OUT_DIR
//
// Writes OUT_DIR/<name>/{model.json, group1-shard*.bin, expected.json}: the shards decoded
// byte for byte, expected.json from TF.js (CPU backend) on seeded image-like inputs in [0, 1].
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { loadModelDir, predictBundle, rng } from './tfjs-io.mjs';

const require = createRequire(import.meta.url);
// The package exports only its entry points: find its directory through node_modules.
const root = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules', 'nsfwjs');
// name → (input size, batch): InceptionV3 at batch 1 keeps the lavapipe run in seconds.
const MODELS = { mobilenet_v2: [224, 2], inception_v3: [299, 1] };

async function write(out, name, [size, batch]) {
  const src = path.join(root, 'dist', 'models', name);
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  const json = require(path.join(src, 'model.min.js'));
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      const base64 = require(path.join(src, `${p}.min.js`));
      fs.writeFileSync(path.join(dir, p), Buffer.from(base64, 'base64'));
    }
  }
  const next = rng(size);
  const n = batch * size * size * 3;
  const data = Array.from({ length: n }, () => next());
  const inputs = [{ name: 'input', shape: [batch, size, size, 3], dtype: 'float32', data }];
  const model = await loadModelDir(dir);
  const bundle = predictBundle(model, inputs);
  bundle.generator = `TF.js ${tf.version.tfjs} (${tf.getBackend()}) on nsfwjs 4.3.0 ${name}`;
  fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(bundle));
  console.log(`${name}: ${model.layers.length} layers, outputs ${bundle.outputs.map((o) => o.shape).join(' ')}`);
}

await tf.setBackend('cpu');
const out = process.argv[2];
for (const [name, spec] of Object.entries(MODELS)) await write(out, name, spec);
