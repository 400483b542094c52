//! Runs the README's curl session, command by command and verbatim, against
//! the real server, and checks every request and answer against the OpenAPI
//! document the server serves (with openapi-core, which validates the
//! document itself first). Needs curl and the Python tools `scripts/test`
//! installs into `.tools/`; fails, never skips, without them.

mod common;

use std::process::Command;

use common::Server;
use producthub::pb::GetProductRequest;
use serde_json::{Value, json};

const README: &str = include_str!("../README.md");
const MARKER: &str = "<!-- curl-session";
const README_ADDR: &str = "localhost:50051";
/// What the test's `.curlrc` makes curl print after each answer.
const EXCHANGE: &str = "\n@@exchange ";

fn curl_on_path() {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "curl is not installed: apt-get install -y curl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_session_works_verbatim_and_matches_the_openapi_document() {
    curl_on_path();
    let python = common::tool("python");
    let probe = python.command().args(["-c", "import openapi_core"]).output().unwrap();
    assert!(
        probe.status.success(),
        "openapi-core is missing from the test Python: run `bash scripts/test` (it installs it into .tools/)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let commands = common::readme_commands(README, MARKER, &["curl "]);
    assert!(commands.len() >= 7, "found {} commands", commands.len());
    for shown in [
        "-X POST",
        "-G",
        "-X PATCH",
        "updateMask=",
        "# fails: ABORTED",
        "# fails: INVALID_ARGUMENT",
        "-X DELETE",
    ] {
        assert!(
            commands.iter().any(|c| c.text.contains(shown)),
            "the session shows {shown}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    // The test's own .curlrc adds a line after each answer; the commands
    // themselves run as written.
    let curl_home = dir.path().join("curl-home");
    std::fs::create_dir_all(&curl_home).unwrap();
    std::fs::write(
        curl_home.join(".curlrc"),
        "write-out = \"\\n@@exchange %{http_code} %{method} %{content_type} %{url_effective}\\n\"\n",
    )
    .unwrap();

    let mut exchanges = Vec::new();
    let mut answers = Vec::new();
    for command in &commands {
        let runnable = command.text.replace(README_ADDR, &server.addr);
        let out = Command::new("bash")
            .env("CURL_HOME", &curl_home)
            .env("HOME", &curl_home)
            .arg("-c")
            .arg(&runnable)
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let at = stdout
            .rfind(EXCHANGE)
            .unwrap_or_else(|| panic!("no answer from:\n{runnable}\n{stdout}{stderr}"));
        let body = stdout[..at].to_string();
        let mut facts = stdout[at + EXCHANGE.len()..].trim().splitn(4, ' ');
        let status: u16 = facts.next().unwrap().parse().unwrap();
        let method = facts.next().unwrap().to_string();
        let content_type = facts.next().unwrap().to_string();
        let url = facts.next().unwrap().to_string();
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}):\n{runnable}\n{body}"));
        match command.text.split("# fails: ").nth(1) {
            Some(expected) => {
                assert!(!out.status.success(), "expected to fail:\n{runnable}\n{body}");
                assert_eq!(answer["error"]["status"], expected.trim(), "{runnable}\n{body}");
                assert_eq!(answer["error"]["code"], status, "the body's code is the HTTP status");
            }
            None => assert!(out.status.success(), "failed:\n{runnable}\n{body}{stderr}"),
        }
        exchanges.push(json!({
            "command": command.text,
            "method": method,
            "url": url,
            "status": status,
            "content_type": content_type,
            "response_body": body,
        }));
        answers.push((command.text.clone(), status, answer));
    }

    // What the session did, seen from gRPC: the update landed, then the delete.
    let answer_to = |shown: &str| {
        answers
            .iter()
            .find(|(c, _, _)| c.contains(shown))
            .map(|(_, status, answer)| (*status, answer.clone()))
            .unwrap()
    };
    let (status, created) = answer_to("-X POST");
    assert_eq!((status, &created["name"]), (200, &json!("products/rest-sensor")));
    let (_, listed) = answer_to("-G");
    assert_eq!(listed["products"][0]["name"], "products/rest-sensor", "{listed}");
    let (_, updated) = answer_to("updateMask=description,labels.env");
    assert_eq!(updated["description"], "Thermostat over REST");
    assert_eq!(updated["labels"]["env"], "prod");
    let (status, bad) = answer_to("updateMask=iot.modelId");
    assert_eq!(status, 400);
    let violation = bad["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .map(|d| d["fieldViolations"][0]["field"].clone());
    assert_eq!(violation, Some(json!("product.iot.model_id")), "{bad}");
    let mut client = server.client().await;
    let gone = client
        .get_product(GetProductRequest {
            name: "products/rest-sensor".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);

    // Every request and answer against the served document.
    let document = reqwest::get(format!("{}/v1/openapi.json", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, &document).unwrap();
    let recorded = dir.path().join("exchanges.json");
    std::fs::write(&recorded, serde_json::to_vec_pretty(&exchanges).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi_check.py");
    let out = python.command().arg(script).arg(&spec).arg(&recorded).output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the session does not match the OpenAPI document:\n{report}"
    );
    assert!(
        report.contains(&format!("{} exchanges checked, 0 problems", exchanges.len())),
        "{report}"
    );
}
