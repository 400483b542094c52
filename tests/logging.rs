//! The per-call log line, in JSON when asked.

mod common;

use std::time::Duration;

use common::Server;
use producthub::pb::GetProductRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_call_with_method_status_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = Server::start_logged(dir.path(), &["--log-format", "json"]);
    let mut client = server.client().await;
    let _ = client
        .get_product(GetProductRequest {
            name: "products/missing".into(),
        })
        .await;

    let call = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a log line for the call");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["target"] == "producthub::call" {
            break value;
        }
    };
    let fields = &call["fields"];
    assert_eq!(fields["method"], "/producthub.v1.ProductService/GetProduct");
    assert_eq!(fields["status"], "NOT_FOUND", "spelt as the metrics spell it");
    let latency = fields["latency_ms"].as_f64().expect("a number");
    assert_eq!(
        latency,
        (latency * 1000.0).round() / 1000.0,
        "to the microsecond: {call}"
    );
    assert_eq!(fields["error"], "products/missing does not exist");
    assert!(
        fields["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{call}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_says_what_the_server_runs_with_and_logs_to_a_file_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = Server::start_logged(dir.path(), &["--log-format", "json"]);
    let start = loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("the start-up line");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["fields"]["message"] == "producthub starting" {
            break value;
        }
    };
    let fields = &start["fields"];
    let store = fields["store"].as_str().unwrap();
    assert!(
        store.starts_with("sled in ") || store.starts_with("PostgreSQL at "),
        "{start}"
    );
    assert_eq!(fields["vendors"], "none");
    assert_eq!(fields["tokens"], "off");
    assert_eq!(fields["tls"], "off");
    drop(server);

    // Text logs into a pipe: plain text, no escape codes.
    let dir = tempfile::tempdir().unwrap();
    let (_server, lines) = Server::start_logged(dir.path(), &[]);
    loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("the start-up line");
        assert!(!line.contains('\u{1b}'), "{line:?}");
        if line.contains("producthub starting") {
            break;
        }
    }
}

#[test]
fn a_port_in_use_stops_start_up_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(!dir.exists(), "the data directory was created");
}

#[test]
fn command_line_mistakes_are_explained() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_producthub"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    let (ok, said) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            file.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(said.contains("is a file, not a directory"), "{said}");
    let (ok, said) = run(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("PRODUCTHUB_MAX_IN_FLIGHT", "lots")],
    );
    assert!(!ok);
    assert!(said.contains("PRODUCTHUB_MAX_IN_FLIGHT"), "{said}");
    let (ok, said) = run(&["serve", "--listen", "localhost:x"], &[]);
    assert!(!ok);
    assert!(said.contains("HOST:PORT"), "{said}");

    // A name, as the README writes addresses, is resolved.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "localhost:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.starts_with("producthub listening on "), "{first}");
}
