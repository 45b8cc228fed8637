use spectral_inference::gpu::Kernel;
#[test]
fn all_kernels_parse_and_validate() {
    for k in Kernel::ALL {
        k.validate().unwrap_or_else(|e| panic!("{e}"));
    }
}
