// Times TensorFlow.js predicting the same architectures as `layercake bench --predict` (and
// `cargo bench --bench predict`): an MLP 784-1024-1024-10 (batch 32), a 3-conv CNN (batch 8,
// 64×64×3) and an LSTM(128) over 200 steps of 32 features (batch 8, in steps per second), on the pure-JS CPU backend and, when @tensorflow/tfjs-backend-wasm is installed, the
// wasm backend; then runs layercake on the same machine in the same run and prints the ratios.
//
//   cargo build --release && node bench-predict.mjs [--repeat 10] [--layercake ../../target/release/layercake]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const repeat = Number(arg('--repeat', 10)) || 10;
const layercake = arg('--layercake', new URL('../../target/release/layercake', import.meta.url).pathname);
const L = tf.layers;

function mlp() {
  const m = tf.sequential();
  m.add(L.dense({ units: 1024, activation: 'relu', inputShape: [784] }));
  m.add(L.dense({ units: 1024, activation: 'relu' }));
  m.add(L.dense({ units: 10, activation: 'softmax' }));
  return [m, tf.randomNormal([32, 784])];
}

function cnn() {
  const m = tf.sequential();
  m.add(L.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', inputShape: [64, 64, 3] }));
  m.add(L.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  m.add(L.conv2d({ filters: 64, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  return [m, tf.randomNormal([8, 64, 64, 3])];
}

const LSTM_STEPS = 200;
function lstm() {
  const m = tf.sequential();
  m.add(L.lstm({ units: 128, recurrentActivation: 'sigmoid', inputShape: [LSTM_STEPS, 32] }));
  return [m, tf.randomNormal([8, LSTM_STEPS, 32])];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function time(build) {
  const [m, x] = build();
  m.predict(x).dataSync(); // warm-up
  const ms = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    m.predict(x).dataSync();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

// layercake's rows: {case, backend, ms: {median}, gflops}, one JSON object per line.
function layercakeTimings() {
  if (!existsSync(layercake)) {
    console.log(`(${layercake} not built: run \`cargo build --release\` for the ratios)`);
    return [];
  }
  const out = execFileSync(layercake, ['bench', '--predict', '--json', '--device', 'gpu', '--repeat', String(repeat)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

async function main() {
  const backends = ['cpu'];
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    backends.push('wasm');
  } catch {
    console.log('(@tensorflow/tfjs-backend-wasm not installed: cpu backend only)');
  }
  const tfjs = {};
  for (const b of backends) {
    await tf.setBackend(b);
    await tf.ready();
    tfjs[b] = { mlp: await time(mlp), cnn: await time(cnn), lstm: await time(lstm) };
    const steps = (LSTM_STEPS / tfjs[b].lstm) * 1e3;
    console.log(`TF.js ${tf.version.tfjs} ${b}: mlp ${tfjs[b].mlp.toFixed(2)} ms, cnn ${tfjs[b].cnn.toFixed(2)} ms, lstm ${tfjs[b].lstm.toFixed(2)} ms = ${steps.toFixed(0)} steps/s (median of ${repeat})`);
  }
  for (const r of layercakeTimings()) {
    const ms = r.ms.median;
    const ratios = Object.entries(tfjs)
      .filter(([, t]) => t[r.case] !== undefined)
      .map(([b, t]) => `${(t[r.case] / ms).toFixed(2)}× faster than TF.js ${b}`);
    const steps = r.steps_per_s ? `, ${r.steps_per_s.toFixed(0)} steps/s` : '';
    console.log(`layercake ${r.backend} ${r.case}: ${ms.toFixed(2)} ms, ${r.gflops.toFixed(2)} GFLOP/s${steps}${ratios.length ? '; ' + ratios.join(', ') : ''}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
