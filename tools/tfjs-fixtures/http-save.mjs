// Saves a model with real TF.js's HTTP handler, the way browsers and Node apps upload models:
// loads MODEL_DIR (model.json + weights, any style) and calls model.save(tf.io.http(URL)), which
// POSTs multipart/form-data with parts model.json and model.weights.bin.
//
//   node http-save.mjs MODEL_DIR URL
// Prints the server's status; exits 1 unless it is 2xx.
import * as tf from '@tensorflow/tfjs';
import { loadModelDir } from './tfjs-io.mjs';

const [dir, url] = process.argv.slice(2);
if (!dir || !url) {
  console.error('usage: node http-save.mjs MODEL_DIR URL');
  process.exit(2);
}
await tf.setBackend('cpu');
const model = await loadModelDir(dir);
try {
  const result = await model.save(tf.io.http(url));
  const status = result.responses?.[0]?.status;
  console.log(`saved ${dir} to ${url}: HTTP ${status}`);
  process.exit(status >= 200 && status < 300 ? 0 : 1);
} catch (e) {
  console.log(`FAIL ${dir} to ${url}: ${e.message}`);
  process.exit(1);
}
