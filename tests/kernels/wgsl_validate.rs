use spectral_inference::gpu::{template, Kernel};

#[test]
fn all_kernels_parse_and_validate() {
    for k in Kernel::ALL {
        k.validate().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Every tiled kernel in `shaders/generated/` is its template's expansion with today's tiles
/// (`src/gpu/tiles.rs`): a hand edit of a generated file, or a template or tile changed without
/// `cargo run --example generate_shaders`, fails here.
#[test]
fn generated_kernels_match_their_templates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("shaders")
        .join("generated");
    let templates = template::templates();
    assert!(templates.len() >= 6);
    for t in templates {
        let name = t.name;
        let want = template::generate(name).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(format!("{name}.wgsl"));
        let have = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            have == want,
            "{} differs from its template's expansion: run `cargo run --example generate_shaders`",
            path.display()
        );
        assert!(
            Kernel::ALL
                .iter()
                .any(|k| k.name() == name && k.generated()),
            "template {name} generates no registered kernel in shaders/generated/"
        );
    }
}
