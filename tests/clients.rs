//! The example clients in other languages (examples/python, examples/node), run
//! against the real server with the tools `scripts/test` installs. Without
//! those tools these tests fail, naming what is missing: they never skip.

mod common;

use std::process::Command;

use common::Server;

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test, which installs the client tools and sets it")
    })
}

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
    let python = required_env("PRODUCTHUB_TEST_PYTHON");
    let stubs = required_env("PRODUCTHUB_TEST_PYTHON_STUBS");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let python_path = match std::env::var("PYTHONPATH") {
        Ok(existing) if !existing.is_empty() => format!("{stubs}:{existing}"),
        _ => stubs,
    };
    let mut command = Command::new(python);
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/client.py"))
        .arg(&server.addr)
        .env("PYTHONPATH", python_path);
    run_client(command, "python");
}

#[test]
fn node_client_with_proto_loader() {
    let node_path = required_env("PRODUCTHUB_TEST_NODE_PATH");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut command = Command::new("node");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node/client.js"))
        .arg(&server.addr)
        .env("NODE_PATH", node_path);
    run_client(command, "node");
}
