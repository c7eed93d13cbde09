//! Runs the C++17 and C99 test programs against a freshly built `libairllm_kernels.a`.
//! Cross-target runs: see the crate docs (`AIRLLM_CPP_TARGET`, `AIRLLM_CPP_RUNNER`).

#[test]
fn cpp_and_c_programs_pass() {
    let report = airllm_cpp_tests::build_and_run().unwrap_or_else(|e| panic!("{e}"));
    print!("{}", report.cpp_output);
    let summary = format!(
        "C++ tests on {}: {} passed; C99 tests: {} passed\n",
        report.target, report.cpp.passed, report.c99.passed
    );
    print!("{summary}");
    // Straight to the process's stderr, past the test harness's capture, so the pass counts
    // show in every `cargo test` log, not only with `--nocapture`.
    use std::io::Write;
    let _ = std::io::stderr().write_all(summary.as_bytes());
    // A suite that silently ran nothing must not pass: every kernel case adds checks per
    // implementation, and there are more than a thousand on the scalar implementation alone.
    assert!(report.cpp.passed > 1000, "too few C++ checks ran");
    assert!(report.c99.passed >= 10, "too few C99 checks ran");
}
