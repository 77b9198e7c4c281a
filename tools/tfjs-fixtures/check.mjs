// Checks that real TensorFlow.js (4.22, pure-JS CPU backend) loads models written by layercake
// and reproduces the fixtures' expected outputs.
//
//   node check.mjs MODEL_DIR|MODEL_JSON_URL EXPECTED_JSON [--atol 1e-5] [--rtol 1e-4] [MODEL_DIR EXPECTED_JSON ...]
//
// Prints one line per model and exits 1 if any model fails to load or any output is out of
// tolerance (compare.mjs: |a - b| <= atol + rtol * |b|, the same rule layercake's tests use;
// NaN, Inf, a missing or extra output fail).
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { loadModelDir, predictBundle } from './tfjs-io.mjs';
import { compareOutputs } from './compare.mjs';

function parseArgs(argv) {
  const opts = { atol: 1e-5, rtol: 1e-4, pairs: [] };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--atol') opts.atol = Number(argv[++i]);
    else if (argv[i] === '--rtol') opts.rtol = Number(argv[++i]);
    else rest.push(argv[i]);
  }
  if (rest.length === 0 || rest.length % 2 !== 0) {
    console.error('usage: node check.mjs MODEL_DIR EXPECTED_JSON [...] [--atol A] [--rtol R]');
    process.exit(2);
  }
  for (let i = 0; i < rest.length; i += 2) opts.pairs.push([rest[i], rest[i + 1]]);
  return opts;
}

async function checkOne(dir, expectedPath, atol, rtol) {
  const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'));
  // An http(s) URL of model.json is loaded by TF.js's own HTTP handler (tf.io.http).
  const model = /^https?:\/\//.test(dir)
    ? await tf.loadLayersModel(dir, { strict: true })
    : await loadModelDir(dir);
  const { outputs } = predictBundle(model, expected.inputs);
  const { ok, notes } = compareOutputs(outputs, expected.outputs, atol, rtol);
  return { ok, notes };
}

async function main() {
  await tf.setBackend('cpu');
  const { atol, rtol, pairs } = parseArgs(process.argv.slice(2));
  let failed = 0;
  for (const [dir, expected] of pairs) {
    try {
      const { ok, notes } = await checkOne(dir, expected, atol, rtol);
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${dir}: ${notes.join('; ')}`);
      if (!ok) failed++;
    } catch (e) {
      failed++;
      console.log(`FAIL ${dir}: ${e.message}`);
    }
  }
  console.log(`tfjs check: ${pairs.length - failed} of ${pairs.length} models ok`);
  process.exit(failed ? 1 : 0);
}

main();
