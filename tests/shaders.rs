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

/// The kernels are compiled without naga's loop bounding (`kernels::RUNTIME_CHECKS`), which is
/// sound only if every loop terminates. Enforce the one loop shape the shaders use: `for (var i
/// = …; i < bound; i++)` (or `i > 0u; i--`) with the counter never written in the body.
#[test]
fn every_loop_is_a_bounded_counter() {
    let sources = kernels::ALL
        .iter()
        .map(|k| (k.name, k.source))
        .chain([("activation", kernels::ACTIVATION_PRELUDE)]);
    for (name, source) in sources {
        let code: String = source
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let source = code.as_str();
        let words: Vec<&str> = source
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        for banned in ["loop", "while", "continuing"] {
            assert!(
                !words.contains(&banned),
                "shaders/{name}.wgsl uses `{banned}`"
            );
        }
        let mut counters = Vec::new();
        for header in source.split("for (").skip(1) {
            let header = &header[..header.find(')').expect("for header")];
            let parts: Vec<&str> = header.split(';').map(str::trim).collect();
            let var = parts[0]
                .strip_prefix("var ")
                .and_then(|p| p.split(" = ").next())
                .unwrap_or_else(|| panic!("shaders/{name}.wgsl: loop `{header}`"));
            let up = parts[1].starts_with(&format!("{var} < ")) && parts[2] == format!("{var}++");
            let down = parts[1] == format!("{var} > 0u") && parts[2] == format!("{var}--");
            assert!(
                up || down,
                "shaders/{name}.wgsl: loop `{header}` is not a bounded counter"
            );
            counters.push(var.to_string());
        }
        counters.sort();
        counters.dedup();
        for var in counters {
            let headers = source.matches(&format!("for (var {var} = ")).count();
            let writes = writes_to(source, &var);
            assert_eq!(
                writes,
                2 * headers,
                "shaders/{name}.wgsl writes loop counter `{var}` outside its `for` header"
            );
        }
    }
}

/// Occurrences of `var =`, `var +=`, `var -=`, `var++`, `var--` (not `==`).
fn writes_to(source: &str, var: &str) -> usize {
    let bytes = source.as_bytes();
    source
        .match_indices(var)
        .filter(|&(at, _)| {
            let before = at.checked_sub(1).map(|i| bytes[i] as char);
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return false;
            }
            let rest = source[at + var.len()..].trim_start();
            (rest.starts_with('=') && !rest.starts_with("=="))
                || ["+=", "-=", "*=", "++", "--"]
                    .iter()
                    .any(|op| rest.starts_with(op))
        })
        .count()
}

/// The byte size of `params`, the kernel's uniform struct, per naga's layout.
fn uniform_size(k: &kernels::Kernel) -> Option<u32> {
    let source = k.module_source();
    let module = naga::front::wgsl::parse_str(&source).ok()?;
    let var = module
        .global_variables
        .iter()
        .map(|(_, v)| v)
        .find(|v| v.space == naga::AddressSpace::Uniform)?;
    Some(module.types[var.ty].inner.size(module.to_ctx()))
}

#[test]
fn every_uniform_struct_matches_its_wgsl_declaration() {
    let wrong: Vec<String> = kernels::ALL
        .iter()
        .filter_map(|k| {
            let wgsl = uniform_size(k).unwrap_or(0);
            (k.uniform_bytes != wgsl)
                .then(|| format!("{}={wgsl} (kernels.rs: {})", k.name, k.uniform_bytes))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "uniform sizes differ: {}",
        wrong.join(", ")
    );
}
