// The comparison rule every checker uses (the same as tests/common's `check_outputs`): equal
// output counts and shapes, and every element within |got - want| <= atol + rtol * |want|,
// which NaN and ±Inf never are.
//
//   node compare.mjs GOT.json WANT.json [--atol A] [--rtol R]
//
// compares the `outputs` lists of two tensor bundles (values may be numbers or the strings
// "NaN", "Infinity", "-Infinity") and exits 1 with the reason when they differ.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One output: `{worst}` or a string saying what differs. */
export function compareOne(got, want, atol, rtol) {
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape) || got.data.length !== want.data.length) {
    return `shape [${got.shape}] (${got.data.length} values) != expected [${want.shape}] (${want.data.length})`;
  }
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) {
    const [g, w] = [Number(got.data[i]), Number(want.data[i])];
    const err = Math.abs(g - w);
    if (!(err <= atol + rtol * Math.abs(w)) || !Number.isFinite(g) || !Number.isFinite(w)) {
      return `element ${i}: ${g} vs expected ${w}`;
    }
    worst = Math.max(worst, err);
  }
  return { worst };
}

/** Every output: `{ok, notes}`, one note per output (or one for a count mismatch). */
export function compareOutputs(got, want, atol, rtol) {
  if (got.length !== want.length) {
    return { ok: false, notes: [`${got.length} outputs, expected ${want.length}`] };
  }
  let ok = true;
  const notes = got.map((out, k) => {
    const r = compareOne(out, want[k], atol, rtol);
    if (typeof r === 'string') { ok = false; return `output ${k}: ${r}`; }
    return `output ${k} max abs err ${r.worst.toExponential(2)}`;
  });
  return { ok, notes };
}

function main(argv) {
  const opts = { atol: 1e-5, rtol: 1e-4 };
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--atol') opts.atol = Number(argv[++i]);
    else if (argv[i] === '--rtol') opts.rtol = Number(argv[++i]);
    else files.push(argv[i]);
  }
  const [got, want] = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')).outputs);
  const { ok, notes } = compareOutputs(got, want, opts.atol, opts.rtol);
  console.log(`${ok ? 'ok' : 'FAIL'} ${notes.join('; ')}`);
  process.exit(ok ? 0 : 1);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
