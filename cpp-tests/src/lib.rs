//! Builds `libairllm_kernels.a` fresh, compiles the C++17 and C99 tests (and a C++11 header
//! check) against it exactly as an outside program would — the header, the static library and
//! the system libraries rustc lists — and runs them.
//!
//! Environment:
//! - `AIRLLM_CPP_TARGET`: a Rust target triple to cross-build for (e.g.
//!   `aarch64-unknown-linux-gnu`); the compiler comes from the `cc` crate's usual lookup
//!   (`aarch64-linux-gnu-g++`, or `CXX_<target>` / `CC_<target>`).
//! - `AIRLLM_CPP_RUNNER`: the command line that runs a foreign binary, split on spaces. If
//!   unset, cargo's `CARGO_TARGET_<TRIPLE>_RUNNER`, else `qemu-<arch> -L /usr/<arch>-linux-gnu`
//!   (set `QEMU_CPU` to choose the emulated CPU).
//! - `AIRLLM_EXPECT_IMPL`: passed through; the C++ tests then require that implementation to be
//!   the detected default.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The system libraries a Linux static Rust library needs, as printed by
/// `rustc --print native-static-libs` for the gnu targets (x86-64 and aarch64 alike).
const LINUX_NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// Counts from one test program's closing line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Checks that passed.
    pub passed: u32,
    /// Checks that failed.
    pub failed: u32,
}

/// What was built and run.
#[derive(Debug)]
pub struct Report {
    /// The Rust target the library and tests were built for.
    pub target: String,
    /// The C++17 suite's counts.
    pub cpp: Counts,
    /// The C99 suite's counts.
    pub c99: Counts,
    /// Everything the C++ suite printed.
    pub cpp_output: String,
}

/// Reads `"<word>: N passed, M failed"` from the last line of `out` that has it.
pub fn parse_counts(out: &str) -> Option<Counts> {
    out.lines().rev().find_map(|line| {
        let rest = line.split_once(": ")?.1;
        let (p, f) = rest.split_once(" passed, ")?;
        let f = f.strip_suffix(" failed")?;
        Some(Counts {
            passed: p.trim().parse().ok()?,
            failed: f.trim().parse().ok()?,
        })
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cpp-tests lives inside the workspace")
        .to_path_buf()
}

/// The target directory and profile of the running test binary
/// (`<target-dir>/<profile-dir>/deps/<test>`), so the library is built next to it.
fn target_dir_and_profile() -> Result<(PathBuf, String), String> {
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test binary is not in <target>/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("test binary is not in <target>/<profile>/deps")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    Ok((target_dir.to_path_buf(), profile))
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{:?}\n{}{}",
            out.status,
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// Builds the static library for `target` with cargo (so it is never stale) and returns its
/// path.
fn build_static_lib(target: &str) -> Result<PathBuf, String> {
    let (target_dir, profile) = target_dir_and_profile()?;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["rustc", "--quiet", "-p", "airllm-ffi", "--lib"])
        // Only the static library: a cross-built cdylib would need a cross linker set up.
        .args(["--crate-type", "staticlib", "--profile", &profile])
        // Always under the triple, even for the host, so this build never overwrites (or is
        // overwritten by) the workspace's own `target/<profile>/libairllm_kernels.a`.
        .args(["--target", target]);
    run(&mut cmd, "cargo rustc -p airllm-ffi")?;
    let dir = if profile == "dev" {
        "debug"
    } else {
        profile.as_str()
    };
    let lib = target_dir
        .join(target)
        .join(dir)
        .join("libairllm_kernels.a");
    if !lib.is_file() {
        return Err(format!("{} was not built", lib.display()));
    }
    Ok(lib)
}

fn compiler(cpp: bool, target: &str, host: &str) -> Result<Command, String> {
    let tool = cc::Build::new()
        .cpp(cpp)
        .target(target)
        .host(host)
        .opt_level(2)
        .debug(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .try_get_compiler()
        .map_err(|e| {
            format!(
                "no {} compiler for {target}: {e}",
                if cpp { "C++" } else { "C" }
            )
        })?;
    let mut cmd = tool.to_command();
    // cc's defaults add `-ffunction-sections` and friends, harmless here; keep them.
    cmd.arg(format!("-I{}", workspace_root().join("include").display()));
    Ok(cmd)
}

fn runner(target: &str, host: &str) -> Vec<String> {
    if let Ok(r) = env::var("AIRLLM_CPP_RUNNER") {
        return r.split_whitespace().map(String::from).collect();
    }
    if target == host {
        return Vec::new();
    }
    // The runner cargo itself would use for this target's test binaries.
    let key = format!(
        "CARGO_TARGET_{}_RUNNER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    if let Ok(r) = env::var(key) {
        return r.split_whitespace().map(String::from).collect();
    }
    let arch = target.split('-').next().unwrap_or(target);
    // Debian's cross sysroots are /usr/<arch>-linux-gnu.
    vec![
        format!("qemu-{arch}"),
        "-L".into(),
        format!("/usr/{arch}-linux-gnu"),
    ]
}

fn run_test_binary(bin: &Path, runner: &[String], what: &str) -> Result<(Counts, String), String> {
    let mut cmd = match runner.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = parse_counts(&text).ok_or_else(|| format!("{what} printed no counts:\n{text}"))?;
    if !out.status.success() || counts.failed != 0 || counts.passed == 0 {
        return Err(format!("{what} failed ({}):\n{text}", out.status));
    }
    Ok((counts, text))
}

/// Builds everything for `AIRLLM_CPP_TARGET` (default: the host), runs both suites and returns
/// their counts; any build failure or failed check is an `Err` with the full output.
pub fn build_and_run() -> Result<Report, String> {
    let host = env!("AIRLLM_CPP_TESTS_HOST");
    let target = env::var("AIRLLM_CPP_TARGET").unwrap_or_else(|_| host.to_string());
    let lib = build_static_lib(&target)?;
    let out_dir = lib
        .parent()
        .ok_or("library has no parent directory")?
        .join("cpp-tests");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cpp");
    let version = format!(
        "-DAIRLLM_EXPECTED_VERSION=\"{}\"",
        env!("CARGO_PKG_VERSION")
    );

    let cpp_bin = out_dir.join("kernels_test");
    let mut cmd = compiler(true, &target, host)?;
    cmd.args([
        "-std=c++17",
        "-ffp-contract=off",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
    ])
    .arg(&version)
    .arg(src.join("kernels_test.cpp"))
    .arg(&lib)
    .args(LINUX_NATIVE_LIBS)
    .arg("-o")
    .arg(&cpp_bin);
    run(&mut cmd, "compiling kernels_test.cpp")?;

    let c_bin = out_dir.join("c99_test");
    let mut cmd = compiler(false, &target, host)?;
    cmd.args(["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"])
        .arg(src.join("c99_test.c"))
        .arg(&lib)
        .args(LINUX_NATIVE_LIBS)
        .arg("-o")
        .arg(&c_bin);
    run(&mut cmd, "compiling c99_test.c")?;

    let mut cmd = compiler(true, &target, host)?;
    cmd.args([
        "-std=c++11",
        "-pedantic",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fsyntax-only",
    ])
    .arg(src.join("cpp11_header.cpp"));
    run(&mut cmd, "compiling the header as C++11")?;

    let runner = runner(&target, host);
    let (cpp, cpp_output) = run_test_binary(&cpp_bin, &runner, "kernels_test")?;
    let (c99, _) = run_test_binary(&c_bin, &runner, "c99_test")?;
    Ok(Report {
        target,
        cpp,
        c99,
        cpp_output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_line_is_parsed() {
        let out = "cpp-tests: scalar: 12 checks\ncpp-tests: 2080 passed, 3 failed\n";
        assert_eq!(
            parse_counts(out),
            Some(Counts {
                passed: 2080,
                failed: 3
            })
        );
        assert_eq!(parse_counts("cpp-tests: nothing\n"), None);
    }
}
