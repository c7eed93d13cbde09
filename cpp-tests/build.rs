//! Records the triple this crate is built for, the default target of the C++ tests.

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=AIRLLM_CPP_TESTS_HOST={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
