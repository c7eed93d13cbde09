//! The `airllm` binary end to end: model generation, inference, the demo, and error exits.

use std::path::Path;
use std::process::{Command, Output};

fn airllm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airllm"))
        .args(args)
        .output()
        .expect("airllm runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn gen_tiny(dir: &Path, arch: &str) -> (String, String) {
    let out = airllm(&[
        "gen-model",
        "--preset",
        "tiny",
        "--arch",
        arch,
        "--weights",
        "q40",
        "--seed",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = dir.join(format!("tiny-{arch}-q40.m"));
    let t = dir.join(format!("tiny-{arch}-q40.t"));
    if arch == "llama" {
        assert_eq!(
            std::fs::metadata(&m).unwrap().len(),
            2_376_840,
            "spec §1.5 file size"
        );
    }
    assert!(t.is_file());
    (m.to_str().unwrap().into(), t.to_str().unwrap().into())
}

#[test]
fn greedy_inference_is_reproducible_and_reports_speed() {
    let dir = tempfile::tempdir().unwrap();
    let (m, t) = gen_tiny(dir.path(), "llama");
    let run = |nodes: &str| {
        let out = airllm(&[
            "inference",
            "--model",
            &m,
            "--tokenizer",
            &t,
            "--prompt",
            "Hello there",
            "--steps",
            "40",
            "--temperature",
            "0",
            "--nthreads",
            "2",
            "--nodes",
            nodes,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = run("1");
    assert!(a.starts_with("Hello there"), "{a}");
    assert!(a.contains("Prefill: ") && a.contains("Decode:  "), "{a}");
    assert!(a.contains("tokens/s") && a.contains("GB/s"), "{a}");
    let generated = |s: &str| s.split("\n\n").next().unwrap_or_default().to_string();
    assert_eq!(generated(&a), generated(&run("1")), "greedy output changed");
    assert!(!generated(&run("2")).is_empty());
}

#[test]
fn demo_generates_once_then_reuses_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = [
        "demo",
        "--dir",
        d,
        "--preset",
        "tiny",
        "--steps",
        "24",
        "--nthreads",
        "1",
    ];
    let first = airllm(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("wrote "));
    assert!(text(&first.stdout).contains("Decode:"));
    let second = airllm(&args);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("using "));
    assert!(!dir.path().join(".tiny-llama-q40.m.partial").exists());
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (m, t) = gen_tiny(dir.path(), "qwen3");
    let cases: [&[&str]; 4] = [
        &[
            "inference",
            "--model",
            "/nonexistent.m",
            "--tokenizer",
            &t,
            "--prompt",
            "a",
            "--steps",
            "4",
        ],
        &[
            "inference",
            "--model",
            &m,
            "--tokenizer",
            &t,
            "--prompt",
            "a",
            "--steps",
            "4",
            "--buffer-float-type",
            "f32",
        ],
        &[
            "inference",
            "--model",
            &m,
            "--tokenizer",
            &t,
            "--prompt",
            "a",
            "--steps",
            "4",
            "--nodes",
            "3",
        ],
        &[
            "inference",
            "--model",
            &m,
            "--tokenizer",
            &m,
            "--prompt",
            "a",
            "--steps",
            "4",
        ],
    ];
    for args in cases {
        let out = airllm(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") || err.contains("\nerror: "),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let bad_flag = airllm(&["inference", "--model", &m, "--buffer-float-type", "q40"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}
