//! `h2load`: the same ceilings and calls as `compare`, driven by nghttp2's
//! h2load instead of the harness's own tonic client. h2load is written in C
//! and costs the server's cores little, so its ratios show more of the
//! server and less of the load generator. It sends one fixed request body per
//! target, so it measures GetProduct of one product, UpdateProduct of one
//! hot product (an update spread over many products needs a body per call,
//! which h2load cannot vary; `compare` measures that), and CreateProduct
//! without a `product_id`, so that each call creates a product of its own
//! under an id the server picks: writes spread over ever more products. h2load counts HTTP
//! answers, not gRPC statuses, so each body is first sent once through a real
//! client and must succeed. GetProduct is also measured over the REST side
//! (`GET /v1/products/{id}`), as a ratio to the same call over gRPC, and
//! ListProducts of one 50-product page against an echo answering as many
//! bytes (h2load decodes neither answer, so only the servers differ).

use std::path::{Path, PathBuf};
use std::process::Command;

use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{CreateProductRequest, GetProductRequest, Product, UpdateProductRequest};
use prost::Message;

use super::echo::EchoRequest;
use super::{LoadArgs, Process, channels, page_after, page_size, payload, preload, sample_product, server_binary};

/// HTTP/2 connections and streams per connection h2load opens.
#[derive(clap::Args, Clone)]
pub struct H2loadArgs {
    #[arg(long, default_value_t = 16)]
    pub h2_connections: usize,
    #[arg(long, default_value_t = 16)]
    pub h2_streams: usize,
}

pub async fn h2load(load: LoadArgs, args: H2loadArgs) -> Result<(), Box<dyn std::error::Error>> {
    let h2load = find_or_install_h2load()?;
    let binary = server_binary(&load)?;
    let work = tempfile::tempdir()?;
    println!(
        "h2load: {} connections x {} streams, {} s per measurement (after 1 s of warm-up), {} cores",
        args.h2_connections,
        args.h2_streams,
        load.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let measure =
        |server: &Process, path: &str, body: &[u8]| run(&h2load, &args, &load, server, path, Some(body), work.path());
    let echo_path = "/producthub.bench.v1.EchoService/Echo";
    let me = std::env::current_exe()?;
    // An echo server (durable with a directory) answering `reply_bytes`.
    let echo = |name: &str, durable: bool, reply_bytes: u32| -> Result<Option<f64>, Box<dyn std::error::Error>> {
        if !load.wants(name) {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let dir_arg = dir.path().display().to_string();
        let mut server_args = vec!["echo-server"];
        if durable {
            server_args.extend(["--durable", &dir_arg]);
        }
        let server = Process::start(&me, &server_args)?;
        let body = grpc_frame(
            &EchoRequest {
                payload: payload(),
                reply_bytes,
            }
            .encode_to_vec(),
        );
        let rate = measure(&server, echo_path, &body)?;
        print_rate(name, rate, None);
        Ok(Some(rate))
    };
    let framework = echo("(a) tonic echo", false, 0)?;
    let durable = echo("(b) tonic echo + sled flush", true, 0)?;
    let framework_ceiling = framework.map(|rate| (rate, "(a)"));
    let durable_ceiling = durable.map(|rate| (rate, "(b)"));

    let data = tempfile::tempdir()?;
    let data_dir = data.path().display().to_string();
    let server = Process::start(&binary, &load.serve_args(&data_dir))?;
    let connections = channels(&server.url(), 4).await?;
    preload(&connections, 0, 10_000, 64).await?;
    let mut client = ProductServiceClient::new(connections[0].clone());

    // One ProductService method with one fixed request message.
    let call = |name: &str, method: &str, request: Vec<u8>| -> Result<Option<f64>, Box<dyn std::error::Error>> {
        if !load.wants(name) {
            return Ok(None);
        }
        let path = format!("/producthub.v1.ProductService/{method}");
        measure(&server, &path, &grpc_frame(&request)).map(Some)
    };

    let get = GetProductRequest {
        name: "products/b000000000".into(),
    };
    client.get_product(get.clone()).await?;
    let get_rate = call("producthub GetProduct", "GetProduct", get.encode_to_vec())?;
    if let Some(rate) = get_rate {
        print_rate("producthub GetProduct", rate, framework_ceiling);
    }

    // The same read over the HTTP/JSON side (GET, transcoded to the same call).
    let rest_name = "producthub GetProduct over REST";
    if load.wants(rest_name) {
        let rest_path = "/v1/products/b000000000";
        let answer = reqwest::get(format!("{}{rest_path}", server.url())).await?;
        if !answer.status().is_success() {
            return Err(format!("GET {rest_path} answered {}: {}", answer.status(), answer.text().await?).into());
        }
        let rate = run(&h2load, &args, &load, &server, rest_path, None, work.path())?;
        print_rate(rest_name, rate, get_rate.map(|get| (get, "gRPC GetProduct")));
    }

    let create = CreateProductRequest {
        product: Some(sample_product(2)),
        ..Default::default()
    };
    client.create_product(create.clone()).await?;
    if let Some(rate) = call(
        "producthub CreateProduct (new)",
        "CreateProduct",
        create.encode_to_vec(),
    )? {
        print_rate("producthub CreateProduct (new)", rate, durable_ceiling);
    }

    let update = UpdateProductRequest {
        product: Some(Product {
            name: "products/b000000001".into(),
            ..sample_product(1)
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["description".into()],
        }),
        ..Default::default()
    };
    client.update_product(update.clone()).await?;
    if let Some(rate) = call(
        "producthub UpdateProduct (hot)",
        "UpdateProduct",
        update.encode_to_vec(),
    )? {
        print_rate("producthub UpdateProduct (hot)", rate, durable_ceiling);
    }

    // One page of 50 from the middle of the catalog, against an echo that
    // answers with as many bytes; h2load reads both answers without decoding.
    let list = page_after(5_000);
    let page_bytes = page_size(&connections[0], 10_000).await?;
    let list_rate = call("producthub ListProducts(50)", "ListProducts", list.encode_to_vec())?;
    server.stop();
    let page_echo_name = format!("(a) echo as ListProducts(50), {page_bytes} B");
    let page_echo = match list_rate {
        Some(_) => echo(&page_echo_name, false, page_bytes)?,
        None => None,
    };
    if let Some(rate) = list_rate {
        print_rate(
            "producthub ListProducts(50)",
            rate,
            page_echo.map(|echo| (echo, "(a) as a page")),
        );
    }
    Ok(())
}

/// One line of the report: the rate, and its ratio to a ceiling if measured.
fn print_rate(name: &str, rate: f64, ceiling: Option<(f64, &str)>) {
    let ratio = ceiling
        .map(|(ceiling, name)| format!("  {:.2}x {name}", rate / ceiling))
        .unwrap_or_default();
    println!("{name:<32} {rate:>10.0} req/s{ratio}");
}

/// A gRPC message frame: no compression, the length, the message.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Runs h2load against `path` for the configured time: a gRPC call with
/// `body` (framed), or with `None` a plain GET; its requests per second.
/// Fails unless every request got an HTTP answer.
fn run(
    h2load: &Path,
    args: &H2loadArgs,
    load: &LoadArgs,
    server: &Process,
    path: &str,
    body: Option<&[u8]>,
    work: &Path,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut command = Command::new(h2load);
    command
        .arg(format!("-c{}", args.h2_connections))
        .arg(format!("-m{}", args.h2_streams))
        .arg(format!("-D{}", load.seconds.max(1)))
        .arg("--warm-up-time=1");
    if let Some(body) = body {
        let body_file = work.join("body");
        std::fs::write(&body_file, body)?;
        command
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("-d")
            .arg(&body_file);
    }
    let output = command.arg(format!("http://{}{path}", server.addr)).output()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        return Err(format!("h2load failed: {text}{}", String::from_utf8_lossy(&output.stderr)).into());
    }
    // "finished in 5.00s, 41234.40 req/s, 45.12MB/s"
    let rate = text
        .lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|rate| rate.strip_suffix(" req/s"))
        .and_then(|rate| rate.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no rate in h2load's output:\n{text}"))?;
    // "requests: 206172 total, 206172 started, 206172 done, 206172 succeeded, 0 failed, 0 errored, 0 timeout"
    let failed = text
        .lines()
        .find(|line| line.starts_with("requests:"))
        .is_some_and(|line| !line.contains(" 0 failed, 0 errored"));
    if failed {
        return Err(format!("h2load saw failed requests:\n{text}").into());
    }
    Ok(rate)
}

/// h2load from PATH; otherwise Debian's `nghttp2-client` is installed (as
/// root, or through sudo), or the command that installs it is named.
fn find_or_install_h2load() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("h2load"))
                .find(|candidate| candidate.is_file())
        })
    };
    if let Some(found) = on_path() {
        return Ok(found);
    }
    eprintln!("h2load is missing: installing Debian's nghttp2-client");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive").status()
    };
    let installed = apt(&["install", "-y", "-qq", "nghttp2-client"]).is_ok_and(|s| s.success())
        || (apt(&["update", "-qq"]).is_ok_and(|s| s.success())
            && apt(&["install", "-y", "-qq", "nghttp2-client"]).is_ok_and(|s| s.success()));
    match on_path() {
        Some(found) if installed => Ok(found),
        _ => Err("h2load is missing and could not be installed: apt-get install -y nghttp2-client".into()),
    }
}
