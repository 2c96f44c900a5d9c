//! Shared harness for the integration suite.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The Python interpreter with the interop packages (pymacaroons, bolt11),
/// as set up by `scripts/python-env.sh`: `$L402_TEST_PYTHON`, else the
/// repository's `.venv`. `None` (and a loud note on stderr) when absent
/// outside CI; under CI (`CI` set) its absence fails the test, so an interop
/// test can never pass by being skipped there.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("L402_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    if candidate.exists() {
        return Some(candidate);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "interop tests need {}; run scripts/python-env.sh (CI must set it up)",
            candidate.display()
        );
    }
    eprintln!(
        "SKIPPED: interop test needs {} (run scripts/python-env.sh)",
        candidate.display()
    );
    None
}

/// Runs `tests/interop/<script>` under [`python`] with `args`, returning
/// stdout; panics with stderr when the script fails.
pub fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("script output is UTF-8")
}
