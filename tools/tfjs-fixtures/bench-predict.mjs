// Times TensorFlow.js predicting the same architectures as `cargo bench --bench predict`:
// an MLP 784-1024-1024-10 (batch 32) and a 3-conv CNN (batch 8, 64×64×3), on the pure-JS CPU
// backend and, when @tensorflow/tfjs-backend-wasm is installed, the wasm backend.
//
//   node bench-predict.mjs [--repeat 10]
import * as tf from '@tensorflow/tfjs';

const repeat = Number(process.argv[process.argv.indexOf('--repeat') + 1]) || 10;
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

async function main() {
  const backends = ['cpu'];
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    backends.push('wasm');
  } catch {
    console.log('(@tensorflow/tfjs-backend-wasm not installed: cpu backend only)');
  }
  for (const b of backends) {
    await tf.setBackend(b);
    await tf.ready();
    console.log(`TF.js ${tf.version.tfjs} ${b}: mlp ${(await time(mlp)).toFixed(2)} ms, cnn ${(await time(cnn)).toFixed(2)} ms (median of ${repeat})`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
