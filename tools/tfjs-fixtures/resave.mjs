// Loads a model with real TensorFlow.js (4.22, CPU backend) and saves it again the way
// tfjs-node's file handler lays it out (model.json + weights.bin), from the artifacts TF.js
// itself produces: used to prove that what layercake puts in `userDefinedMetadata` survives a
// round trip through TF.js.
//
//   node resave.mjs SRC_DIR DST_DIR
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { loadModelDir } from './tfjs-io.mjs';

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error('usage: node resave.mjs SRC_DIR DST_DIR');
  process.exit(2);
}
await tf.setBackend('cpu');
const model = await loadModelDir(src);
await model.save(tf.io.withSaveHandler(async (a) => {
  fs.mkdirSync(dst, { recursive: true });
  const parts = Array.isArray(a.weightData) ? a.weightData : [a.weightData];
  fs.writeFileSync(path.join(dst, 'weights.bin'), Buffer.concat(parts.map((p) => Buffer.from(p))));
  const json = {
    modelTopology: a.modelTopology,
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
  };
  if (a.userDefinedMetadata != null) json.userDefinedMetadata = a.userDefinedMetadata;
  fs.writeFileSync(path.join(dst, 'model.json'), JSON.stringify(json));
  return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
}));
console.log(`${src} -> ${dst}: userDefinedMetadata ${model.getUserDefinedMetadata() ? 'kept' : 'absent'}`);
