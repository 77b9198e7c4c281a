// Times TensorFlow.js (4.22, pure-JS CPU backend) loading and saving a model's files, runs
// `layercake bench --model` on the same files in the same run, and prints the ratios.
//
//   node bench.mjs MODEL_DIR [--repeat 5] [--device gpu|cpu|auto] [--layercake ../../target/release/layercake]
//
// layercake runs with --device gpu by default (any adapter, lavapipe included), so its load
// materializes every tensor in device buffers as TF.js materializes them in tensors.
//
// A synthetic model TF.js can load: `layercake bench --size 256MiB --keep-model DIR`.
// TF.js load = reading model.json and every weight file + tf.loadLayersModel; TF.js save =
// model.save through a handler writing model.json + weights.bin (no fsync, as Node writes), so
// it is compared with layercake's "save (no fsync)".
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadModelDir } from './tfjs-io.mjs';

function args(argv) {
  const o = { repeat: 5, device: 'gpu', layercake: path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../target/release/layercake') };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--repeat') o.repeat = Number(argv[++i]);
    else if (argv[i] === '--layercake') o.layercake = argv[++i];
    else if (argv[i] === '--device') o.device = argv[++i];
    else rest.push(argv[i]);
  }
  if (rest.length !== 1) { console.error('usage: node bench.mjs MODEL_DIR [--repeat N] [--layercake BIN]'); process.exit(2); }
  o.dir = path.resolve(rest[0]);
  return o;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };

function weightBytes(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  return json.weightsManifest.flatMap((g) => g.paths).reduce((n, p) => n + fs.statSync(path.join(dir, p)).size, 0);
}

async function timeTfjs(dir, repeat) {
  const load = [];
  const save = [];
  let peakRss = 0;
  const out = fs.mkdtempSync(path.join(path.dirname(dir), '.tfjs-save-'));
  try {
    for (let r = 0; r < repeat; r++) {
      let t = process.hrtime.bigint();
      const model = await loadModelDir(dir);
      load.push(Number(process.hrtime.bigint() - t) / 1e9);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      t = process.hrtime.bigint();
      await model.save(tf.io.withSaveHandler(async (a) => {
        const json = { modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] };
        fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(json));
        fs.writeFileSync(path.join(out, 'weights.bin'), Buffer.from(a.weightData));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      save.push(Number(process.hrtime.bigint() - t) / 1e9);
      model.dispose();
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return { load: median(load), save: median(save), peakRss };
}

async function main() {
  await tf.setBackend('cpu');
  const o = args(process.argv.slice(2));
  const bytes = weightBytes(o.dir);
  const t = await timeTfjs(o.dir, o.repeat);
  const res = spawnSync(o.layercake, ['bench', '--model', o.dir, '--json', '--repeat', String(o.repeat), '--device', o.device], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (res.status !== 0) { console.error(res.stderr || res.error); process.exit(1); }
  const lc = JSON.parse(res.stdout);
  const row = (name) => lc.rows.find((r) => r.name === name).gbps.median;
  const gb = (s) => bytes / s / 1e9;
  const lines = [
    ['TF.js load (read files + loadLayersModel)', gb(t.load)],
    ['TF.js save (model.save to files, no fsync)', gb(t.save)],
    ['layercake load (files → device)', row('load')],
    ['layercake save (no fsync)', row('save (no fsync)')],
  ];
  console.log(`model ${o.dir}: ${bytes} weight bytes; layercake device: ${lc.device}`);
  for (const [k, v] of lines) console.log(`${k.padEnd(46)} ${v.toFixed(3)} GB/s`);
  console.log(`ratio load  layercake / TF.js: ${(row('load') / gb(t.load)).toFixed(1)}×`);
  console.log(`ratio save  layercake / TF.js: ${(row('save (no fsync)') / gb(t.save)).toFixed(1)}×`);
  console.log(`peak RSS: TF.js ${(t.peakRss / 2 ** 20).toFixed(0)} MiB (${(t.peakRss / bytes).toFixed(2)}× the model); layercake during load ${(lc.peak_load_rss_bytes / 2 ** 20).toFixed(0)} MiB`);
}

main().catch((e) => { console.error(e); process.exit(1); });
