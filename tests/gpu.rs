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

#[test]
fn a_lost_device_is_an_error_not_an_abort() {
    let Some(dev) = common::gpu() else { return };
    let a = layercake::open(&common::fixtures_dir().join("cnn")).unwrap();
    let weights = dev.upload(&a, &Default::default(), &mut |_, _| {}).unwrap();
    let model = layercake::model::Model::load(&common::fixtures_dir().join("cnn")).unwrap();
    let gm = layercake::model::gpu::GpuModel::new(&dev, &model).unwrap();
    dev.device.destroy(); // as a driver reset or an unplugged GPU would
    let x = layercake::tensor::Tensor::new(vec![1, 12, 12, 3], vec![0.5; 432]).unwrap();
    let predicted = gm.predict(&[x]);
    let err = predicted.expect_err("predicting on a lost device must fail");
    assert!(err.to_string().contains("lost"), "{err}");
    let read = weights.reader(1 << 20).and_then(|r| {
        use layercake::format::WeightBytes;
        r.logical(0).map(|b| b.len())
    });
    let err = read.expect_err("reading back from a lost device must fail");
    assert!(err.to_string().contains("lost"), "{err}");
}

/// On a machine without a desktop session the Vulkan loader's display probe (Mesa's
/// device-select layer) must not print its `XDG_RUNTIME_DIR` error before every command.
#[test]
fn opening_the_gpu_without_a_session_prints_no_error_lines() {
    if common::gpu().is_none() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("device")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("MESA_VK_DEVICE_SELECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stderr.contains("error"), "stderr: {stderr}");
    assert!(!stdout.contains("error"), "stdout: {stdout}");
}
