//! The Keras masks beside every slot of a run, in the two forms Keras 3 has: the masks as the
//! model runs, and the masks Keras computed when it built the model (recorded in the topology as
//! a call's explicit `mask=` argument). They part where a Keras 3 MultiHeadAttention runs: it
//! clears the run-time masks of the tensors it reads (`set_keras_mask(query, None)`), so a later
//! reader of the same tensor — the residual `Add` of a Transformer block — sees none, and a merge
//! with an unmasked input has none; a layer called with an explicit `mask=` still reads the
//! build-time mask. Generic over the mask's storage: tensors on the CPU, buffers on the GPU.

use super::graph::Op;

/// Per slot: its run-time mask and its build-time mask.
pub(crate) struct SlotMasks<T> {
    run: Vec<Option<T>>,
    built: Vec<Option<T>>,
    /// The two differ for this slot (else `built` is a copy of `run`).
    parted: Vec<bool>,
}

impl<T: Clone> SlotMasks<T> {
    /// No masks on `slots` slots.
    pub(crate) fn new(slots: usize) -> Self {
        SlotMasks {
            run: vec![None; slots],
            built: vec![None; slots],
            parted: vec![false; slots],
        }
    }

    /// True when slot `s` carries a mask in either form.
    pub(crate) fn any(&self, s: usize) -> bool {
        self.run[s].is_some() || self.built[s].is_some()
    }

    /// The masks `op` reads, one per input: the build-time ones where Keras passed it an
    /// explicit `mask=`, else the run-time ones.
    pub(crate) fn read(&self, op: &Op) -> Vec<Option<T>> {
        let from = if op.explicit_mask {
            &self.built
        } else {
            &self.run
        };
        op.inputs.iter().map(|&s| from[s].clone()).collect()
    }

    /// The build-time masks of `op`'s inputs, if they differ from what [`SlotMasks::read`]
    /// gives (then the build-time output mask needs its own computation).
    pub(crate) fn built_if_parted(&self, op: &Op) -> Option<Vec<Option<T>>> {
        let parted = !op.explicit_mask && op.inputs.iter().any(|&s| self.parted[s]);
        parted.then(|| op.inputs.iter().map(|&s| self.built[s].clone()).collect())
    }

    /// Record `op`'s output masks (`built` `None`: the same as `run`), then clear the run-time
    /// masks of its inputs where the layer does so.
    pub(crate) fn finish(&mut self, op: &Op, run: Option<T>, built: Option<Option<T>>) {
        let o = op.output;
        self.parted[o] = built.is_some();
        self.built[o] = built.unwrap_or_else(|| run.clone());
        self.run[o] = run;
        if op.clears_input_masks {
            for &s in &op.inputs {
                if self.run[s].take().is_some() {
                    self.parted[s] = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(inputs: &[usize], output: usize, explicit: bool, clears: bool) -> Op {
        Op {
            layer: 0,
            inputs: inputs.to_vec(),
            output,
            extra: Vec::new(),
            explicit_mask: explicit,
            clears_input_masks: clears,
        }
    }

    #[test]
    fn an_attention_clears_its_inputs_run_masks_but_not_the_built_ones() {
        let mut m: SlotMasks<u8> = SlotMasks::new(5);
        m.finish(&op(&[], 0, false, false), Some(1), None); // embedding with a mask
        m.finish(&op(&[0, 0], 1, false, true), Some(1), None); // attention keeps the query's
                                                               // The residual reader of slot 0 sees no mask at run time, the build-time one is kept.
        assert_eq!(m.read(&op(&[0, 1], 2, false, false)), vec![None, Some(1)]);
        assert_eq!(
            m.built_if_parted(&op(&[0, 1], 2, false, false)),
            Some(vec![Some(1), Some(1)])
        );
        // A call with an explicit mask= reads the build-time masks.
        assert_eq!(m.read(&op(&[0], 3, true, false)), vec![Some(1)]);
        assert!(m.any(0));
    }
}
