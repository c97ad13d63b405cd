//! `payhsmd serve --config FILE`: the production entry point, with the PIN from the
//! environment and a KEK that must already exist.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{Client, ClientIdentity, ClientOptions};
use std::process::Command;
use support::*;

fn config_text(d: &Daemon, token_label: &str) -> String {
    let k = keys();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[tls]
cert = "{k}/server.pem"
key = "{k}/server.key"
client_ca = "{k}/ca.pem"
crls = ["{k}/ca.crl.pem"]
[pkcs11]
token_label = "{token_label}"
pin_env = "PAYHSM_TEST_PIN"
softhsm2_conf = "{data}/softhsm2.conf"
[store]
sqlite_path = "{data}/payhsm.db"
[policy]
dir = "{policies}"
[log]
format = "json"
"#,
        k = k.display(),
        data = d.data_dir.display(),
        policies = repo().join("policies").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_from_a_config_file_on_an_existing_token() {
    // dev mode made the token, KEK and data key; serve must find and use them.
    let mut d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("4111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "prod").await);
    drop(gw);
    let status = d.terminate();
    assert!(status.success(), "{status:?}\n{}", d.logs());

    let config = d.data_dir.parent().unwrap().join("payhsmd.toml");
    std::fs::write(&config, config_text(&d, "payhsm-dev")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsmd"));
    cmd.arg("serve").arg("--config").arg(&config).env(
        "PAYHSM_TEST_PIN",
        payhsm::config::defaults::DANGER_DEV_USER_PIN,
    );
    let (mut child, addr) = spawn_until_listening(cmd, &d.log_path);
    let opts = ClientOptions {
        url: format!("https://{addr}"),
        ca: keys().join("ca.pem"),
        identity: Some(ClientIdentity {
            cert: keys().join("clients/vault-reader.pem"),
            key: keys().join("clients/vault-reader.key"),
        }),
        http2: false,
    };
    let mut reader = Client::connect(&opts).await.unwrap();
    let r = detokenize(&mut reader, &token, "prod").await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    child.kill().unwrap();
    child.wait().unwrap();
    // JSON logs were asked for: every line the serve run wrote is a JSON object.
    let logs = d.logs();
    let serve_lines: Vec<&str> = logs.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!serve_lines.is_empty());
    for l in serve_lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}

#[test]
fn a_bad_config_value_stops_serve_naming_its_key_path() {
    let tmp = tempfile::tempdir().unwrap();
    // A bad value: the error names its key path, exit 2.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"everywhere\"\n[tls]\ncert=\"a\"\nkey=\"b\"\nclient_ca=\"c\"\n\
         [pkcs11]\ntoken_label=\"t\"\npin_env=\"P\"\n[store]\nsqlite_path=\"d\"\n[policy]\ndir=\"p\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_payhsmd"))
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_kek_refuses_to_start() {
    let mut d = Daemon::start();
    let status = d.terminate();
    assert!(status.success(), "{status:?}\n{}", d.logs());
    // Same token, but a KEK label that does not exist in it.
    let config = d.data_dir.parent().unwrap().join("nokek.toml");
    let text = config_text(&d, "payhsm-dev").replace(
        "pin_env = \"PAYHSM_TEST_PIN\"",
        "pin_env = \"PAYHSM_TEST_PIN\"\nkek_label = \"no-such-kek\"",
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_payhsmd"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env(
            "PAYHSM_TEST_PIN",
            payhsm::config::defaults::DANGER_DEV_USER_PIN,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no KEK labelled `no-such-kek`"), "{err}");
    assert!(out.stdout.is_empty(), "it served");
}
