//! The files that register the MCP server with clients (examples/,
//! .claude-plugin/, skills/) are checked by tests/interop/check_registration.py:
//! JSON parses with the required keys, skill frontmatter is valid, agent.py
//! compiles, only real settings are named.

use crate::common::{python, run_python};

#[test]
fn registration_files_are_valid() {
    let Some(py) = python() else { return };
    let out = run_python(&py, "check_registration.py", &[]);
    assert!(out.contains("0 failed"), "{out}");
}
