//! Runs the README's "Moving an existing catalog to producthub" walk-through,
//! command by command, against the real server configured with a fake
//! Cryptlex holding the walk-through's three products, and checks that each
//! `#>` line of the README appears in its command's output. Needs grpcurl
//! (`scripts/test` installs it into `.tools/`) and fails, never skips,
//! without it.

mod common;
mod fake_vendors;

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
    for command in &commands {
        common::run_readme_command(command, &server, README_ADDR, &grpcurl);
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
