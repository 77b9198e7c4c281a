//! Resources over time: a bounded load → predict (CPU and GPU) → save → reload loop keeps file
//! handles and memory flat over a fixed 300 rounds (no deadline: the machine's speed is not
//! what it tests). Its own test binary, so no other test's allocations share the
//! process whose memory it measures.

mod common;

use common::*;
use layercake::bench::current_rss;
use layercake::model::Model;
use layercake::{save, SaveOptions};
use std::path::Path;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn a_load_predict_save_loop_keeps_memory_and_handles_flat() {
    let dev = gpu();
    let src = fixtures_dir().join("cnn");
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("m");
    let expected = src.join("expected.json");
    let inputs = bundle_tensors(&expected, "inputs");
    let iteration = |from: &Path| {
        let m = Model::load(from).unwrap();
        m.predict(&inputs).unwrap();
        if let Some(d) = &dev {
            layercake::model::gpu::GpuModel::new(d, &m)
                .unwrap()
                .predict(&inputs)
                .unwrap();
        }
        save(
            &dst,
            &m.artifacts.spec,
            &m.artifacts,
            SaveOptions::default(),
        )
        .unwrap();
        Model::load(&dst).unwrap();
    };
    for _ in 0..10 {
        iteration(&src);
    }
    let (fds, rss) = (open_fds(), current_rss().unwrap_or(0));
    // Two equal halves: allocator and driver caches settle in the first, a leak would keep
    // growing in the second.
    let (mut n, mut mid) = (0, rss);
    while n < 300 {
        iteration(if n % 2 == 0 { &src } else { &dst });
        n += 1;
        if n == 150 {
            mid = current_rss().unwrap_or(0);
        }
    }
    let (fds_after, rss_after) = (open_fds(), current_rss().unwrap_or(0));
    eprintln!("{n} iterations: fds {fds} → {fds_after}, RSS {rss} → {mid} → {rss_after} bytes");
    assert!(
        fds_after <= fds + 2,
        "file handles grew: {fds} → {fds_after}"
    );
    assert!(
        rss_after <= mid + (8 << 20),
        "memory kept growing: {mid} → {rss_after}"
    );
}
