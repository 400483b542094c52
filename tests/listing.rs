//! Reading whole vendor catalogs through `vendors::listing`, against fake
//! vendors over HTTP holding hundreds of products on many pages: each page is
//! asked for as the vendor documents it, a rate limit or an outage on the way
//! is waited out, and every product comes exactly once.

mod fake_vendors;

use std::collections::BTreeSet;
use std::time::Duration;

use producthub::vendors::listing::{ListError, ListRetry, Listing};
use producthub::vendors::{Connections, Secret, Vendor, VendorSettings, VendorsConfig, cryptlex, enos, revenium};
use serde_json::{Value, json};

const CATALOG: usize = 523;

fn retry() -> ListRetry {
    ListRetry {
        attempts: 4,
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
        longest_retry_after: Duration::from_secs(5),
    }
}

fn settings() -> VendorSettings {
    VendorSettings {
        enos_org_id: Some("org-1".into()),
        revenium_team_id: Some("T1".into()),
        revenium_owner_id: Some("O1".into()),
    }
}

struct Estate {
    enos: fake_vendors::Fake,
    cryptlex: fake_vendors::Fake,
    revenium: fake_vendors::Fake,
    connections: Connections,
}

async fn estate() -> Estate {
    let enos = fake_vendors::enos().await;
    let cryptlex = fake_vendors::cryptlex().await;
    let revenium = fake_vendors::revenium().await;
    enos.seed(CATALOG, |n| {
        let key = format!("K{n:04}");
        (
            key.clone(),
            json!({"productKey": key, "productName": {"defaultValue": format!("Meter {n}")}, "modelId": "m",
                   "productType": "Device", "dataFormat": "Json", "biDirectionalAuth": false}),
        )
    });
    cryptlex.seed(CATALOG, |n| {
        let id = format!("c{n:04}");
        (
            id.clone(),
            json!({"id": id, "name": format!("Licence {n}"), "licenseTemplateId": "lt"}),
        )
    });
    revenium.seed(CATALOG, |n| {
        let id = format!("R{n:04}");
        (
            id.clone(),
            json!({"id": id, "name": format!("API {n}"), "version": "1.0.0"}),
        )
    });
    let config = VendorsConfig {
        enos: Some(enos::Config {
            base_url: enos.url(),
            org_id: "org-1".into(),
            app_key: fake_vendors::ENOS_APP_KEY.into(),
            app_secret: Secret::new(fake_vendors::ENOS_APP_SECRET),
        }),
        cryptlex: Some(cryptlex::Config {
            base_url: cryptlex.url(),
            access_token: Secret::new(fake_vendors::CRYPTLEX_TOKEN),
            webhook_token: None,
        }),
        revenium: Some(revenium::Config {
            base_url: revenium.url(),
            api_key: Secret::new(fake_vendors::REVENIUM_KEY),
            team_id: "T1".into(),
            owner_id: "O1".into(),
        }),
        settings: settings(),
    };
    let connections = Connections::new(&config, Duration::from_secs(5)).expect("an HTTP client");
    Estate {
        enos,
        cryptlex,
        revenium,
        connections,
    }
}

fn ids(vendor: Vendor, products: &[Value]) -> Vec<String> {
    let field = match vendor {
        Vendor::Enos => "productKey",
        _ => "id",
    };
    products
        .iter()
        .map(|p| p[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_catalog_is_read_whole_and_once_across_pages_and_rate_limits() {
    let e = estate().await;
    let settings = settings();
    for (vendor, fake) in [
        (Vendor::Enos, &e.enos),
        (Vendor::Cryptlex, &e.cryptlex),
        (Vendor::Revenium, &e.revenium),
    ] {
        // One 429 with Retry-After: 1 on the way, waited out.
        fake.set(|b| b.rate_limit_once = true);
        let listing = Listing::new(&e.connections, vendor, &settings, retry());
        let products = listing
            .all_from(0)
            .await
            .unwrap_or_else(|error| panic!("{vendor}: {error}"));
        let seen = ids(vendor, &products);
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), CATALOG, "{vendor}: every product");
        assert_eq!(unique.len(), CATALOG, "{vendor}: each once");
        let pages: Vec<_> = fake.product_calls().into_iter().filter(|c| c.status == 200).collect();
        let size = vendor.adapter().page_size() as usize;
        assert!(size <= 100, "{vendor}: within the vendor's limit");
        assert_eq!(
            pages.len(),
            CATALOG.div_ceil(size),
            "{vendor}: one call a page, no more"
        );
        assert!(
            fake.product_calls().iter().any(|c| c.status == 429),
            "{vendor}: the rate limit was met and waited out"
        );
    }
    // Each page was asked for as the vendor documents it.
    let search = &e.enos.product_calls().into_iter().find(|c| c.status == 200).unwrap();
    assert_eq!(search.query.get("action").map(String::as_str), Some("search"));
    assert_eq!(search.json()["pagination"], json!({"pageNo": 1, "pageSize": 50}));
    let cryptlex_page = &e
        .cryptlex
        .product_calls()
        .into_iter()
        .find(|c| c.status == 200)
        .unwrap();
    assert_eq!(
        (
            cryptlex_page.query.get("page").map(String::as_str),
            cryptlex_page.query.get("limit").map(String::as_str)
        ),
        (Some("1"), Some("100"))
    );
    let revenium_page = &e
        .revenium
        .product_calls()
        .into_iter()
        .find(|c| c.status == 200)
        .unwrap();
    assert_eq!(
        (
            revenium_page.query.get("teamId").map(String::as_str),
            revenium_page.query.get("page").map(String::as_str),
            revenium_page.query.get("size").map(String::as_str)
        ),
        (Some("T1"), Some("0"), Some("100"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_resumes_at_a_page_and_an_outage_past_its_retries_is_an_error() {
    let e = estate().await;
    let settings = settings();
    let listing = Listing::new(&e.connections, Vendor::Cryptlex, &settings, retry());
    let first = listing.page(0).await.unwrap();
    assert_eq!((first.index, first.products.len(), first.last), (0, 100, false));
    let rest = listing.all_from(1).await.unwrap();
    assert_eq!(first.products.len() + rest.len(), CATALOG, "resumed where it stopped");
    assert_eq!(ids(Vendor::Cryptlex, &rest)[0], "c0100");

    e.cryptlex.set(|b| b.down = true);
    match listing.page(2).await {
        Err(ListError::Vendor { vendor, page, error }) => {
            assert_eq!((vendor, page), (Vendor::Cryptlex, 2));
            assert!(error.is_retryable(), "{error}");
        }
        other => panic!("an outage past the retries ends the listing: {other:?}"),
    }
    let tries = e.cryptlex.product_calls().iter().filter(|c| c.status == 503).count();
    assert_eq!(tries, 4, "the page was tried as often as the retry policy allows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_that_ignores_paging_is_an_error_not_a_loop() {
    let e = estate().await;
    e.cryptlex.set(|b| b.ignore_paging = true);
    let settings = settings();
    let listing = Listing::new(&e.connections, Vendor::Cryptlex, &settings, retry());
    match listing.all_from(0).await {
        Err(ListError::Repeats { vendor, page }) => assert_eq!((vendor, page), (Vendor::Cryptlex, 1)),
        other => panic!("{other:?}"),
    }
}
