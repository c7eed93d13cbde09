//! The checked-in C header must be exactly what cbindgen generates from the crate now.
//! Regenerate it with `AIRLLM_BLESS=1 cargo test -p airllm-ffi --test header`.

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("read ffi/cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on the ffi crate")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("cbindgen wrote UTF-8");
    let path = crate_dir.join("../include/airllm_kernels.h");
    if std::env::var_os("AIRLLM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write include/airllm_kernels.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_diff = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "include/airllm_kernels.h is out of date (first difference at line {}); \
             regenerate it with `AIRLLM_BLESS=1 cargo test -p airllm-ffi --test header` \
             and commit the result",
            first_diff + 1
        );
    }
}
