//! Runs `kernel-report` on one small kernel and checks the table, the targets section and the
//! JSON file it writes.

use std::process::Command;

#[test]
fn report_prints_a_table_and_writes_json() {
    let json =
        std::env::temp_dir().join(format!("kernel-report-smoke-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_kernel-report"))
        .args([
            "--quick",
            "--probe-mib",
            "8",
            "--filter",
            "softmax 4096",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run kernel-report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).expect("utf-8 table");
    let impls: Vec<_> = airllm_kernels::available().collect();
    for imp in &impls {
        let row = format!("| softmax | 4096 | {imp} | 1 | cache |");
        assert!(md.contains(&row), "missing {row:?} in\n{md}");
    }
    // Only softmax ran: its target has a verdict, the matmul targets were not measured.
    assert!(md.lines().any(|l| l.contains("softmax 4096, 1 thread")
        && (l.contains("**PASS**") || l.contains("**FAIL**"))));
    assert!(md.contains("**not measured** Q80×Q40 mat-vec 4096x4096"));

    let j = std::fs::read_to_string(&json).expect("JSON written");
    let _ = std::fs::remove_file(&json);
    assert_eq!(j.matches("\"kernel\": \"softmax\"").count(), impls.len());
    assert!(j.contains("\"read_bandwidth\""));
    // A quick run has one mat-vec pass: no probes between passes, no paired fractions.
    assert!(j.contains("\"pass_probes\": [{"));
    assert_eq!(
        j.matches("\"fraction_of_pass_read_bw\": null").count(),
        impls.len()
    );
    assert!(j.trim_end().ends_with('}'));
}

#[test]
fn report_times_the_packed_layout_and_judges_targets_on_row_major() {
    let json =
        std::env::temp_dir().join(format!("kernel-report-packed-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_kernel-report"))
        .args([
            "--quick",
            "--no-scalar",
            "--probe-mib",
            "8",
            "--filter",
            "packed 2048x2048",
            "--filter",
            "stream",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run kernel-report");
    let _ = std::fs::remove_file(&json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).expect("utf-8 table");
    let impls: Vec<_> = airllm_kernels::available()
        .filter(|i| *i != airllm_kernels::Impl::Scalar)
        .collect();
    for imp in &impls {
        let row = format!("| matmul_q80_q40_packed | 2048x2048 | {imp} | 1 | stream |");
        assert!(md.contains(&row), "missing {row:?} in\n{md}");
    }
    assert!(!md.contains("| matmul_q80_q40 |"), "{md}");
    // Only the packed layout ran: the mat-vec targets name the row-major kernel (what the C
    // ABI receives), so they are not judged on the packed figures.
    if !impls.is_empty() {
        assert!(
            md.lines().any(
                |l| l.contains("stream ≥ 0.90 of read bandwidth on every shape")
                    && l.contains("**not measured**")
            ),
            "{md}"
        );
    }
    assert!(md.contains("**not measured** Q80×Q40 mat-vec 4096x4096"));
}

#[test]
fn report_rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_kernel-report"))
        .arg("--bogus")
        .output()
        .expect("run kernel-report");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}
