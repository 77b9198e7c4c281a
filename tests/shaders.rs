//! Every WGSL file under shaders/ is registered as a kernel (or is the activation prelude) and
//! validates with naga (no GPU needed).

use layercake::gpu::kernels;

#[test]
fn every_shader_validates() {
    for k in kernels::ALL {
        let source = k.module_source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {}", k.name, e.emit_to_string(&source)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {}", k.name, e.emit_to_string(&source)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "shaders/{}.wgsl has no `main`",
            k.name
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text == kernels::ACTIVATION_PRELUDE {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            kernels::ALL.iter().any(|k| k.name == stem),
            "{} is not in kernels::ALL",
            path.display()
        );
        assert!(
            kernels::ALL.iter().any(|k| k.source == text),
            "{} differs from the compiled-in source",
            path.display()
        );
    }
}
