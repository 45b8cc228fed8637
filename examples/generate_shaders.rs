//! Writes `shaders/generated/NAME.wgsl` for every kernel template in `shaders/templates/` (see
//! `src/gpu/template.rs`): run after changing a template or a tile in `src/gpu/tiles.rs`.
//!
//!     cargo run --example generate_shaders

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("shaders")
        .join("generated");
    for t in spectral_inference::gpu::template::templates() {
        let name = t.name;
        let path = root.join(format!("{name}.wgsl"));
        let text = spectral_inference::gpu::template::generate(name)?;
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            std::fs::write(&path, text)?;
            println!("wrote {}", path.display());
        } else {
            println!("unchanged {}", path.display());
        }
    }
    Ok(())
}
