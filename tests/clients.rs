//! The example clients in other languages (examples/python, examples/node), run
//! against the real server with the tools `scripts/test` installs (found as
//! `common::tool` describes: its variables, else `.tools/`, else PATH).
//! Without those tools these tests fail, naming what is missing: they never skip.

mod common;

use std::process::Command;

use common::Server;

fn run_client(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {what} client: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {what} client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(&format!("{what} client: OK")), "{stdout}");
}

#[test]
fn python_client_with_generated_stubs() {
    let python = common::tool("python");
    let stubs = common::python_stubs();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // The stubs first on PYTHONPATH, then what the Python install needs.
    let mut command = python.command_with_python_path(&[stubs.as_path()]);
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/client.py"))
        .arg(&server.addr);
    run_client(command, "python");
}

#[test]
fn node_client_with_proto_loader() {
    let node = common::tool("node");
    let node_path = common::node_modules();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut command = node.command();
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node/client.js"))
        .arg(&server.addr)
        .env("NODE_PATH", node_path);
    run_client(command, "node");
}
