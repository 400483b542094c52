//! Runs the README's grpcurl session, command by command, against the real
//! server, so the README stays true. Needs grpcurl (`scripts/test` installs it
//! into `.tools/`, where `common::tool` finds it; else it is taken from PATH)
//! and fails, never skips, without it.

mod common;

use std::process::Command;

use common::Server;
use producthub::pb::GetProductRequest;

const README: &str = include_str!("../README.md");
const MARKER: &str = "<!-- grpcurl-session";
const README_ADDR: &str = "localhost:50051";

/// The grpcurl commands of the README's session block, each with its
/// continuation lines.
fn session_commands() -> Vec<String> {
    common::readme_commands(README, MARKER, &["grpcurl "])
        .into_iter()
        .map(|c| c.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_session_works_verbatim() {
    let grpcurl = common::grpcurl();

    let commands = session_commands();
    assert!(commands.len() >= 8, "found {} commands: {commands:#?}", commands.len());
    for verb in [
        "list",
        "describe",
        "CreateProduct",
        "UpdateProduct",
        "GetProduct",
        "ListProducts",
        "DeleteProduct",
        "ImportVendorProduct",
        "RenderVendorCall",
    ] {
        assert!(commands.iter().any(|c| c.contains(verb)), "the session shows {verb}");
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut outputs = Vec::new();
    for command in &commands {
        let runnable = command.replace(README_ADDR, &server.addr);
        // The README says `grpcurl`: the one found above comes first on PATH.
        let mut bash = Command::new("bash");
        grpcurl.set_env(&mut bash, &[]);
        let out = bash.arg("-c").arg(&runnable).output().expect("run bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match command.split("# fails: ").nth(1) {
            Some(code) => {
                assert!(!out.status.success(), "expected to fail:\n{command}\n{text}");
                assert!(text.contains(code.trim()), "expected {code}:\n{command}\n{text}");
            }
            None => assert!(out.status.success(), "failed:\n{command}\n{text}"),
        }
        outputs.push((command.clone(), text));
    }

    let output_of = |verb: &str| {
        outputs
            .iter()
            .find(|(c, _)| c.contains(verb))
            .map(|(_, o)| o.as_str())
            .unwrap_or_default()
    };
    assert!(output_of(" list").contains("producthub.v1.ProductService"));
    assert!(output_of("describe").contains("display_name"));
    assert!(output_of("CreateProduct").contains("\"name\": \"products/demo-sensor\""));
    assert!(output_of("UpdateProduct").contains("Thermostat with Wi-Fi"));
    assert!(output_of("GetProduct").contains("演示传感器"));
    assert!(output_of("ListProducts").contains("products/demo-sensor"));
    assert!(output_of("ImportVendorProduct").contains("2zp6A70r"));
    assert!(output_of("RenderVendorCall").contains("productKey=2zp6A70r"));

    let mut client = server.client().await;
    let gone = client
        .get_product(GetProductRequest {
            name: "products/demo-sensor".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        gone.code(),
        tonic::Code::NotFound,
        "the session ends by deleting the product"
    );
}
