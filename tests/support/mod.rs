//! Test harness: runs the real `payhsmd dev` (real SoftHSM2 token, real SQLite, real mTLS) in a
//! temporary data directory and talks to it with the real client.
#![allow(dead_code)] // each test crate uses part of the harness

pub mod authenticator;
pub mod ceremony;
pub mod postgres;
pub mod rfc9162;
pub mod softhsm;

use payhsm::client::{Client, ClientIdentity, ClientOptions, Response};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample PKI.
pub fn keys() -> PathBuf {
    repo().join("keys-sample")
}

/// A running dev daemon.
pub struct Daemon {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory (SoftHSM2 token, SQLite).
    pub data_dir: PathBuf,
    /// Its stderr (logs), across restarts.
    pub log_path: PathBuf,
    /// The extra `payhsmd dev` arguments it was started with (and restarts with).
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    /// Starts a fresh daemon in a new temporary directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a fresh daemon with extra `payhsmd dev` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("payhsmd.log");
        let (child, addr) = spawn(&data_dir, &log_path, extra);
        Self {
            child: Some(child),
            addr,
            data_dir,
            log_path,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            _tmp: tmp,
        }
    }

    /// Starts another daemon on this one's data directory (so the same SoftHSM2 token: the same
    /// KEK and signing keys) with `extra` arguments, logging to its own file. With the same
    /// `--postgres URL` it is a replica of the same vault. Keep `self` alive as long: it owns
    /// the directory.
    pub fn replica(&self, extra: &[&str]) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let log_path = tmp.path().join("payhsmd.log");
        let (child, addr) = spawn(&self.data_dir, &log_path, extra);
        Self {
            child: Some(child),
            addr,
            data_dir: self.data_dir.clone(),
            log_path,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            _tmp: tmp,
        }
    }

    /// Starts the daemon again on the same data directory (after `kill` or `terminate`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (child, addr) = spawn(&self.data_dir, &self.log_path, &extra);
        self.child = Some(child);
        self.addr = addr;
    }

    /// SIGKILL: no chance to flush or drain.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("not running");
        signal(&c, "TERM");
        c.wait().unwrap()
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.take().expect("not running").wait().unwrap()
    }

    /// Sends the running daemon a signal by name (`HUP`, ...).
    pub fn send_signal(&self, name: &str) {
        signal(self.child.as_ref().expect("not running"), name);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// Client options for a sample identity (`gateway`, `vault-reader`, ...).
    pub fn options(&self, who: &str) -> ClientOptions {
        ClientOptions {
            url: format!("https://{}", self.addr),
            ca: keys().join("ca.pem"),
            identity: Some(ClientIdentity {
                cert: keys().join(format!("clients/{who}.pem")),
                key: keys().join(format!("clients/{who}.key")),
            }),
            http2: false,
        }
    }

    /// A connected HTTP/1.1 client for a sample identity.
    pub async fn client(&self, who: &str) -> Client {
        Client::connect(&self.options(who)).await.unwrap()
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// A raw TLS stream to a daemon.
pub type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

impl Daemon {
    /// A TLS connection as the sample identity `who`, offering `alpn`, handshake done and
    /// nothing sent: for tests that speak raw HTTP or misbehave.
    pub async fn tls_stream(&self, who: &str, alpn: &[&[u8]]) -> TlsStream {
        let mut tls = payhsm::client::tls_config(&self.options(who)).unwrap();
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap()
    }
}

/// An active token for store-level tests: its sealed PAN a placeholder (those tests never
/// open it), no fingerprint, no convergence lookup.
pub fn placeholder_token(
    token: &payhsm::card::Token,
    domain: &payhsm::card::Domain,
) -> payhsm::store::NewToken {
    payhsm::store::NewToken {
        record: payhsm::store::TokenRecord {
            token: token.clone(),
            domain: domain.clone(),
            fingerprint: None,
            sealed: Some(payhsm::keys::SealedPan {
                key_version: payhsm::keys::KeyVersion(1),
                nonce: [7; 12],
                ciphertext: vec![0xab; 40],
            }),
            last4: payhsm::card::Last4::parse(token.last4()).unwrap(),
            status: payhsm::card::TokenStatus::Active,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
        },
        format: payhsm::card::TokenFormat::default(),
        lookup: Vec::new(),
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal by name with kill(1).
pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} failed");
}

fn spawn(data_dir: &Path, log_path: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsmd"));
    cmd.arg("dev")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--keys")
        .arg(keys())
        .arg("--policies")
        .arg(repo().join("policies"));
    if let Some((var, conf)) = dev_token_store(data_dir) {
        cmd.arg("--module")
            .arg(softhsm::module_path())
            .env(var, conf);
    }
    cmd.args(extra);
    spawn_until_listening(cmd, log_path)
}

/// The token store of the dev daemon on `data_dir` when the module under test is not
/// SoftHSM2 (whose store `payhsmd dev` configures itself): the variable naming its
/// configuration and the file, written under `data_dir` (created owner-only) if absent, so
/// replicas and restarts on one data directory share the token.
pub fn dev_token_store(data_dir: &Path) -> Option<(&'static str, PathBuf)> {
    if softhsm::is_softhsm2() {
        return None;
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(data_dir).unwrap();
    Some(softhsm::write_store_config(data_dir))
}

/// Spawns a prepared `payhsmd` command, its stderr appended to `log_path`, and waits for its
/// "listening on" line.
pub fn spawn_until_listening(mut cmd: Command, log_path: &Path) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("payhsmd listening on ") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "payhsmd did not start; its log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
    }
}

/// A random Luhn-valid PAN of `len` digits starting with `prefix`.
pub fn random_pan(prefix: &str, len: usize) -> String {
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf).unwrap();
    let mut i = 0;
    while digits.len() < len - 1 {
        digits.push(buf[i % 32] % 10);
        i += 1;
        if i % 32 == 0 {
            getrandom::getrandom(&mut buf).unwrap();
        }
    }
    let check = luhn_check_digit(&digits);
    digits.push(check);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut d = u32::from(*d);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Whether ASCII digits pass Luhn.
pub fn luhn_ok(s: &str) -> bool {
    payhsm::card::luhn_valid(s.as_bytes())
}

/// POST JSON.
pub async fn post(c: &mut Client, path: &str, body: serde_json::Value) -> Response {
    c.request(
        hyper::Method::POST,
        path,
        Some(body.to_string().into_bytes()),
    )
    .await
    .unwrap()
}

/// GET.
pub async fn get(c: &mut Client, path: &str) -> Response {
    c.request(hyper::Method::GET, path, None).await.unwrap()
}

/// Tokenizes and returns the response.
pub async fn tokenize(c: &mut Client, pan: &str, domain: &str) -> Response {
    post(
        c,
        "/v1/tokens",
        serde_json::json!({"pan": pan, "domain": domain}),
    )
    .await
}

/// Detokenizes and returns the response.
pub async fn detokenize(c: &mut Client, token: &str, domain: &str) -> Response {
    post(
        c,
        "/v1/tokens/detokenize",
        serde_json::json!({"token": token, "domain": domain}),
    )
    .await
}

/// The `error.code` of an error response.
pub fn error_code(r: &Response) -> String {
    r.json().unwrap()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `token` field of a tokenize response.
pub fn token_of(r: &Response) -> String {
    r.json().unwrap()["token"].as_str().unwrap().to_owned()
}

/// The data directory a `payhsm` command line names with `--data-dir`, if any.
pub fn data_dir_arg<'a>(args: &[&'a str]) -> Option<&'a Path> {
    let at = args.iter().position(|a| *a == "--data-dir")?;
    args.get(at + 1).map(|a| Path::new(*a))
}

/// Runs the `payhsm` CLI with these arguments.
pub fn payhsm(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsm"));
    cmd.args(args).current_dir(repo());
    // A dev data directory's token in a module other than SoftHSM2 is found through that
    // module's own configuration, as the daemon on it was given.
    let data_dir = data_dir_arg(args).filter(|dir| dir.is_dir());
    if let Some((var, conf)) = data_dir.and_then(dev_token_store) {
        cmd.env(var, conf);
    }
    cmd.output().unwrap()
}

/// Writes `text` (an audit export) to `name` in the daemon's temp dir and runs `payhsm audit
/// verify` on it: whether it verified, and what the command printed.
pub fn audit_verify(d: &Daemon, name: &str, text: &str) -> (bool, String) {
    let path = d.data_dir.parent().unwrap().join(name);
    std::fs::write(&path, text).unwrap();
    let out = payhsm(&["audit", "verify", path.to_str().unwrap()]);
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

/// `payhsm audit export --data-dir DIR` of this daemon's data directory.
pub fn audit_export(d: &Daemon) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsm"));
    cmd.args(["audit", "export", "--data-dir"])
        .arg(&d.data_dir)
        .current_dir(repo());
    if let Some((var, conf)) = dev_token_store(&d.data_dir) {
        cmd.env(var, conf);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "audit export failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Tokenizes a card in `domain` and enrols `auth` bound to it (packed self attestation).
pub async fn enrol_for_token(
    gw: &mut Client,
    auth: &authenticator::Authenticator,
    domain: &str,
) -> (String, String) {
    let token = token_of(&tokenize(gw, &random_pan("411111", 16), domain).await);
    let r = post(
        gw,
        "/v1/devices/challenges",
        serde_json::json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let mut body = auth
        .register(
            c["challenge"].as_str().unwrap(),
            authenticator::Attestation::PackedSelf,
        )
        .body(c["challenge_id"].as_str().unwrap());
    body["token"] = token.clone().into();
    body["domain"] = domain.into();
    let r = post(gw, "/v1/devices", body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let enrolled = r.json().unwrap();
    assert_eq!(enrolled["trust"], "self");
    (token, enrolled["device_id"].as_str().unwrap().to_owned())
}
