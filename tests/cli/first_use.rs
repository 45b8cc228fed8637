//! What a new user meets first: no alarming Mesa message, CSV files with a header line, and
//! `spin eval` output that reads back as `spin eval` input.

use std::process::Command;

use spectral_inference::gpu::context::should_quiet_device_select;

#[test]
fn device_select_is_quieted_only_when_the_user_set_nothing() {
    assert!(should_quiet_device_select(None, None));
    assert!(should_quiet_device_select(None, Some("0")));
    assert!(!should_quiet_device_select(Some("0"), None));
    assert!(!should_quiet_device_select(Some("1"), None));
    assert!(!should_quiet_device_select(None, Some("1")));
}

#[test]
fn spin_info_prints_no_xdg_error_by_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .arg("info")
        .env_remove("NODEVICE_SELECT")
        .env_remove("SPIN_DEVICE_SELECT")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("running spin info");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spin info failed: {stderr}");
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR"),
        "Mesa's device-select warning leaked: {stderr}"
    );
}

#[test]
fn matrix_csv_with_a_header_line_is_read() {
    let dir = std::env::temp_dir().join(format!("spin-first-use-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.csv");
    std::fs::write(&path, "a,b,c\n2,1,0\n1,3,1\n0,1,4\n").unwrap();
    let m = spectral_inference::experiments::matrix::read_matrix_csv(&path).unwrap();
    assert_eq!(m[(1, 1)], 3.0);
    assert_eq!(m.nrows(), 3);
    std::fs::write(&path, "a,b\n2,x\n1,3\n").unwrap();
    let e = spectral_inference::experiments::matrix::read_matrix_csv(&path).unwrap_err();
    assert!(e.to_string().contains("line 2, column 2"), "{e}");
}
