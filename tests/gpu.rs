//! GPU tests: they run on any adapter (lavapipe in CI). Without one they skip with a printed
//! reason, unless LAYERCAKE_REQUIRE_GPU=1, which turns a missing adapter into a failure.

mod common;

#[test]
fn device_uses_the_adapters_own_limits_and_computes() {
    let Some(dev) = common::gpu() else { return };
    eprintln!("adapter: {}", dev.describe());
    assert!(
        dev.limits.max_storage_buffer_binding_size >= 128 << 20,
        "{}",
        dev.describe()
    );
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 100.0).collect();
    let y = dev.axpy(&x, -1.5, 0.25).unwrap();
    for (i, (a, b)) in x.iter().zip(&y).enumerate() {
        assert_eq!(*b, -1.5 * a + 0.25, "element {i}");
    }
}

#[test]
fn dispatch_beyond_one_grid_dimension() {
    let Some(dev) = common::gpu() else { return };
    // More workgroups than one dimension allows (65535 × 64 elements): needs the 2D grid.
    let n = 64 * dev.limits.max_compute_workgroups_per_dimension as usize + 1000;
    let x: Vec<f32> = (0..n).map(|i| (i % 1024) as f32).collect();
    let y = dev.axpy(&x, 2.0, 1.0).unwrap();
    let bad = x.iter().zip(&y).position(|(a, b)| *b != 2.0 * a + 1.0);
    assert_eq!(bad, None, "first wrong element");
}
