//! Runs the README's Python and Node.js steps verbatim, each in a fresh copy
//! of the repository's protos and examples (as a new user's checkout would
//! be), against the real server, and checks that the clients leave nothing
//! behind. They install from PyPI and npm as the README says (pip and npm
//! caches make that quick after `scripts/test`); without python3 or npm these
//! tests fail, naming what to install: they never skip.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use producthub::pb::ListProductsRequest;

const README: &str = include_str!("../README.md");
const README_ADDR: &str = "127.0.0.1:50051";

/// Copies `from` (a directory) to `to`, leaving out what a checkout would
/// not have (installed packages).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "node_modules" || name == "package-lock.json" || name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh directory holding what the README's steps use.
fn checkout() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for part in ["proto", "examples/python", "examples/node"] {
        copy_tree(&root.join(part), &dir.path().join(part));
    }
    dir
}

/// Runs the README block after `marker` with bash in `checkout`, against
/// `server`; returns what it printed.
fn run_steps(marker: &str, checkout: &Path, server: &Server) -> String {
    let script = common::readme_block(README, marker).replace(README_ADDR, &server.addr);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(checkout)
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the README's steps failed:\n{script}\n{text}");
    text
}

async fn assert_nothing_left(server: &Server) {
    let mut client = server.client().await;
    let left = client
        .list_products(ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .products;
    assert!(left.is_empty(), "the client left products behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_steps_work_verbatim_in_a_fresh_copy() {
    assert!(
        common::on_path("python3").is_some(),
        "python3 is not on PATH: install Python 3 (with python3-venv on Debian and Ubuntu)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let copy = checkout();
    let printed = run_steps("<!-- python-steps", copy.path(), &server);
    assert!(printed.contains("python client: OK"), "{printed}");
    assert_nothing_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_node_steps_work_verbatim_in_a_fresh_copy() {
    assert!(
        common::on_path("npm").is_some() && common::on_path("node").is_some(),
        "node and npm are not on PATH: install Node.js with npm"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let copy = checkout();
    let printed = run_steps("<!-- node-steps", copy.path(), &server);
    assert!(printed.contains("node client: OK"), "{printed}");
    assert_nothing_left(&server).await;
}

#[test]
fn the_readme_rust_client_is_the_compiled_example() {
    let start = README
        .find("<!-- rust-client")
        .expect("README has the rust-client marker");
    let block = &README[start..];
    let body = &block[block.find("```rust\n").expect("a rust block") + "```rust\n".len()..];
    let shown = &body[..body.find("```").expect("the block is closed")];
    let example = include_str!("../examples/rust_client.rs");
    let code: Vec<&str> = example.lines().filter(|l| !l.starts_with("//!")).collect();
    assert_eq!(
        shown.trim(),
        code.join("\n").trim(),
        "README and examples/rust_client.rs differ"
    );
}

#[test]
fn reflection_lists_only_the_services_the_server_serves() {
    let grpcurl = common::grpcurl();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = grpcurl
        .command()
        .args(["-plaintext", &server.addr, "list"])
        .output()
        .expect("run grpcurl");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    let services: Vec<&str> = listed.lines().collect();
    assert_eq!(
        services,
        [
            "google.longrunning.Operations",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "producthub.v1.ProductService",
        ],
        "the benchmark's echo service is not served, so it is not listed"
    );
}
