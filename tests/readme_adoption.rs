//! Runs the README's "Moving an existing catalog to producthub" walk-through,
//! command by command, against the real server configured with a fake
//! Cryptlex holding the walk-through's three products, and checks that each
//! `#>` line of the README appears in its command's output. Needs grpcurl
//! (`scripts/test` installs it into `.tools/`) and fails, never skips,
//! without it.

mod common;
mod fake_vendors;

use std::path::Path;
use std::process::Command;

use common::Server;
use producthub::pb::GetProductRequest;
use serde_json::json;

const README: &str = include_str!("../README.md");
const MARKER: &str = "<!-- adoption-walkthrough";
const README_ADDR: &str = "localhost:50051";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_works_verbatim() {
    let grpcurl = common::grpcurl();
    let commands = common::readme_commands(README, MARKER, &["grpcurl ", "producthub "]);
    for verb in [
        "import",
        "--dry-run",
        "unlink",
        "link",
        "ListOperations",
        "keep_vendor_copies",
    ] {
        assert!(
            commands.iter().any(|c| c.text.contains(verb)),
            "the walk-through shows {verb}"
        );
    }

    let cryptlex = fake_vendors::cryptlex().await;
    for (id, name) in [
        ("lic-basic", "Weather Basic"),
        ("lic-pro", "Weather Pro"),
        ("lic-legacy", "Old Station"),
    ] {
        cryptlex.seed(1, |_| {
            (
                id.to_owned(),
                json!({"id": id, "name": name.to_lowercase().replace(' ', "-"), "displayName": name,
                       "licenseTemplateId": "lt-weather", "publicKey": format!("RSA-PUB-{id}")}),
            )
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--cryptlex-base-url",
            &cryptlex.url(),
            "--cryptlex-token",
            fake_vendors::CRYPTLEX_TOKEN,
        ],
    );
    // The README says `producthub`: the binary under test comes first on PATH.
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_producthub")).parent().unwrap().to_owned();
    for command in &commands {
        let runnable = command.text.replace(README_ADDR, &server.addr);
        let mut bash = Command::new("bash");
        grpcurl.set_env(&mut bash, &[]);
        let path =
            std::env::join_paths(std::iter::once(binary_dir.clone()).chain(std::env::split_paths(&bash_path(&bash))))
                .unwrap();
        let out = bash
            .env("PATH", path)
            .env("PRODUCTHUB_SERVER", server.url())
            .arg("-c")
            .arg(&runnable)
            .output()
            .expect("run bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "failed:\n{runnable}\n{text}");
        for line in &command.expected {
            assert!(
                text.contains(line.as_str()),
                "expected {line:?} from:\n{runnable}\n{text}"
            );
        }
    }

    let writes: Vec<String> = cryptlex
        .product_calls()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "adopting, unlinking and keeping copies send Cryptlex nothing"
    );
    assert_eq!(cryptlex.catalog_len(), 3);
    let mut client = server.client().await;
    let pro = client
        .get_product(GetProductRequest {
            name: "products/weather-pro".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pro.licensing.unwrap().product_id, "lic-pro");
}

/// The PATH `command` will run with.
fn bash_path(command: &Command) -> std::ffi::OsString {
    command
        .get_envs()
        .find(|(key, _)| *key == "PATH")
        .and_then(|(_, value)| value.map(ToOwned::to_owned))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default()
}
