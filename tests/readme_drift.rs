//! Runs the README's "When a vendor's copy changes" walk-through, command by
//! command, against the real server configured with a fake Cryptlex. Between
//! the creates and the first reconcile it edits both copies at the fake, as
//! the README's comment says someone does in Cryptlex's console, and it checks
//! that each `#>` line appears in its command's output and that the push put
//! producthub's value back. Needs grpcurl (`scripts/test` installs it into
//! `.tools/`) and fails, never skips, without it.

mod common;
mod fake_vendors;

use common::{Server, wait_for};
use producthub::pb::{Product, SyncState, Vendor};
use serde_json::json;

const README: &str = include_str!("../README.md");
const MARKER: &str = "<!-- drift-walkthrough";
const README_ADDR: &str = "localhost:50051";

fn cryptlex_synced(p: &Product) -> bool {
    p.sync
        .iter()
        .any(|s| s.vendor == Vendor::Cryptlex as i32 && s.state == SyncState::Synced as i32 && s.synced_etag == p.etag)
}

fn cryptlex_id(p: &Product) -> String {
    p.licensing.clone().unwrap_or_default().product_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_drift_walk_through_works_verbatim() {
    let grpcurl = common::grpcurl();
    let commands = common::readme_commands(README, MARKER, &["grpcurl "]);
    for shown in [
        "ReconcileProduct",
        "RECONCILE_POLICY_ADOPT",
        "RECONCILE_POLICY_PUSH",
        "DRIFTED",
    ] {
        assert!(
            commands.iter().any(|c| c.text.contains(shown)),
            "the walk-through shows {shown}"
        );
    }
    let first_reconcile = commands
        .iter()
        .position(|c| c.text.contains("ReconcileProduct"))
        .expect("the walk-through reconciles");

    let cryptlex = fake_vendors::cryptlex().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--cryptlex-base-url",
            &cryptlex.url(),
            "--cryptlex-token",
            fake_vendors::CRYPTLEX_TOKEN,
            "--reconcile-policy",
            "report",
        ],
    );
    let mut client = server.client().await;
    for command in &commands[..first_reconcile] {
        common::run_readme_command(command, &server, README_ADDR, &grpcurl);
    }
    // The console edits the README describes.
    let pro = wait_for(
        &mut client,
        "products/weather-pro",
        "its Cryptlex copy",
        cryptlex_synced,
    )
    .await;
    let basic = wait_for(
        &mut client,
        "products/weather-basic",
        "its Cryptlex copy",
        cryptlex_synced,
    )
    .await;
    cryptlex.edit(&cryptlex_id(&pro), |copy| copy["displayName"] = json!("Weather Pro+"));
    cryptlex.edit(&cryptlex_id(&basic), |copy| copy["trialPolicyId"] = json!("tp-30-days"));

    for command in &commands[first_reconcile..] {
        common::run_readme_command(command, &server, README_ADDR, &grpcurl);
    }

    let pushed = wait_for(&mut client, "products/weather-basic", "the push", cryptlex_synced).await;
    assert_eq!(
        cryptlex.stored(&cryptlex_id(&pushed)).unwrap()["trialPolicyId"],
        "tp-14-days"
    );
    let adopted = wait_for(&mut client, "products/weather-pro", "the adopted name", cryptlex_synced).await;
    assert_eq!(adopted.display_name, "Weather Pro+");
    assert_eq!(
        cryptlex.stored(&cryptlex_id(&adopted)).unwrap()["displayName"],
        "Weather Pro+"
    );
}
