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

/// The agent example in the README runs as written against a real gateway,
/// with the official MCP Python SDK as its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_agent_example_pays_and_reuses() {
    let Some(py) = python() else { return };
    let gw = crate::common::TestGateway::start(l402_mcp::gateway::GatewayConfig::demo()).await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/agent.py");
    let mut cmd = std::process::Command::new(py);
    cmd.arg(&script)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_l402-mcp"),
            "--gateway",
            &gw.base,
        ])
        .env_remove("L402_CONFIG")
        .env_remove("L402_DEV_NODE")
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "agent.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(gw.node.settlements(), 1, "{stdout}");
    assert!(stdout.contains("21"), "{stdout}");
}
