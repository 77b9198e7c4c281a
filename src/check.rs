//! Post-load checks that compare what a device holds with what the files say.

use crate::error::Result;
use crate::format::{Artifacts, WeightBytes};
use xxhash_rust::xxh3::xxh3_64;

/// The weight-hash check of one weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashCheck {
    /// Weight name.
    pub name: String,
    /// xxh3-64 of the logical bytes decoded from the files (the file bytes themselves for
    /// unquantized weights).
    pub expected: u64,
    /// xxh3-64 of the bytes read back from the device.
    pub actual: u64,
}

impl HashCheck {
    /// True when the hashes agree.
    pub fn ok(&self) -> bool {
        self.expected == self.actual
    }
}

/// Hash every weight as read back from `device` (e.g. a [`crate::gpu::residency::GpuReader`])
/// and as decoded from the files of `a`. Mismatches are the "silent zeros" failure mode.
pub fn weight_hashes(a: &Artifacts, device: &dyn WeightBytes) -> Result<Vec<HashCheck>> {
    let order: Vec<usize> = (0..a.spec.weights.len()).collect();
    device.will_read(&order);
    order
        .into_iter()
        .map(|i| {
            Ok(HashCheck {
                name: a.spec.weights[i].name.clone(),
                expected: xxh3_64(&a.logical(i)),
                actual: xxh3_64(&device.logical(i)?),
            })
        })
        .collect()
}
