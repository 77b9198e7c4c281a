// Prints every layer class and activation registered in TF.js's serialization map, one per line
// as `layer NAME` / `activation NAME`: what `layercake inspect` must know (tests/predict.rs).
// Activations are the registered names that start lower-case (`relu`, `hardSigmoid`, `gelu_new`);
// initializers, constraints, regularizers and optimizers are neither printed.
//
//   node layer-classes.mjs
import * as tf from '@tensorflow/tfjs';

const map = tf.serialization.SerializationMap.getMap().classNameMap;
for (const name of Object.keys(map).sort()) {
  if (map[name][0].prototype instanceof tf.layers.Layer) console.log(`layer ${name}`);
  else if (/^[a-z]/.test(name)) console.log(`activation ${name}`);
}
