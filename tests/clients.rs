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

/// Bytes that are not a valid request (bad wire format; a string that is not
/// UTF-8) are the caller's fault: INVALID_ARGUMENT with reason
/// MALFORMED_REQUEST, never INTERNAL (which clients retry). Sent raw from
/// Python's grpc, which lets a test put any bytes on the wire.
#[test]
fn undecodable_requests_are_invalid_argument() {
    let python = common::tool("python");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let script = r#"
import sys, grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary("/producthub.v1.ProductService/CreateProduct",
                           request_serializer=lambda b: b, response_deserializer=lambda b: b)
for name, payload in [("wire", b"\xff\xff\xff"), ("utf8", b"\x0a\x03\x1a\x01\xff")]:
    try:
        call(payload, timeout=10)
        print(name, "accepted")
    except grpc.RpcError as error:
        status = rpc_status.from_call(error)
        reasons = []
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reasons.append(info.reason)
        print(name, error.code().name, ",".join(reasons))
"#;
    let mut command = python.command();
    command.arg("-c").arg(script).arg(&server.addr);
    let output = command.output().expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("wire INVALID_ARGUMENT MALFORMED_REQUEST"), "{stdout}");
    assert!(stdout.contains("utf8 INVALID_ARGUMENT MALFORMED_REQUEST"), "{stdout}");
}
