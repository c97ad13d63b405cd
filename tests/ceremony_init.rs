//! `payhsm ceremony init` of a real token and ceremonies on it, end to end: the real CLI
//! binary, a fresh token store of the module under test per test (SoftHSM2, or the module
//! `PAYHSM_TEST_PKCS11_MODULE` names), PINs passed on extra file descriptors, custodians
//! checked against `policies/identities.toml`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::path::{Path, PathBuf};
use support::ceremony::*;
use support::softhsm::{kind, Kind};

const SO_PIN: &str = "so-pin-for-tests-7d1c";
const USER_PIN: &str = "user-pin-for-tests-52e9";

/// Keeps a run's stderr for the scan; returns its exit code.
fn keep(texts: &mut Vec<(String, String)>, name: &str, r: &Run) -> Option<i32> {
    texts.push((format!("{name} stderr"), r.stderr.clone()));
    r.code()
}

/// A token store and the data directories made on it.
struct Fixture {
    hsm: TokenStore,
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            hsm: TokenStore::new(),
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `ceremony init` of `label` into data directory `name`, SO PIN on fd 3, user PIN on 4.
    fn init_with(&self, name: &str, label: &str, so: &str, user: &str, extra: &[&str]) -> Run {
        let dir = self.dir(name);
        let mut args = vec![
            "ceremony",
            "init",
            "--data-dir",
            dir.to_str().unwrap(),
            "--token-label",
            label,
            "--so-pin-fd",
            "3",
            "--user-pin-fd",
            "4",
        ];
        args.extend_from_slice(extra);
        let so = format!("{so}\n");
        let user = format!("{user}\n");
        self.hsm.cli(&args, "", &[(3, &so), (4, &user)])
    }

    /// A successful init with the test PINs; returns the data directory.
    fn init(&self, name: &str, label: &str) -> PathBuf {
        let r = self.init_with(name, label, SO_PIN, USER_PIN, &[]);
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        self.dir(name)
    }

    /// A ceremony command on `dir` with the user PIN on fd 3.
    fn run(&self, args: &[&str], dir: &Path, stdin: &str) -> Run {
        self.run_pin(args, dir, stdin, USER_PIN)
    }

    fn run_pin(&self, args: &[&str], dir: &Path, stdin: &str, pin: &str) -> Run {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--data-dir", dir.to_str().unwrap(), "--user-pin-fd", "3"]);
        self.hsm.cli(&all, stdin, &[(3, &format!("{pin}\n"))])
    }

    /// `payhsm audit export` of `dir`, parsed.
    fn export(&self, dir: &Path) -> (String, Vec<serde_json::Value>) {
        let r = self.run(&["audit", "export"], dir, "");
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        let records = r
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (r.stdout, records)
    }

    /// The slot ID of the token `label`, as `payhsm ceremony tokens` lists it.
    fn slot_of(&self, label: &str) -> String {
        let tokens = self.hsm.tokens();
        tokens
            .iter()
            .find(|(_, initialized, l)| *initialized && l == label)
            .unwrap_or_else(|| panic!("no token {label} in {tokens:?}"))
            .0
            .clone()
    }

    /// Initialized tokens in the store, as `payhsm ceremony tokens` lists them.
    fn token_count(&self) -> usize {
        self.hsm
            .tokens()
            .iter()
            .filter(|(_, init, _)| *init)
            .count()
    }
}

/// The manufacturer and model the module under test gives its tokens.
fn maker() -> (&'static str, &'static str) {
    match kind() {
        Kind::SoftHsm2 => ("SoftHSM project", "SoftHSM v2"),
        Kind::Kryoptic => ("Kryoptic Project", "v1"),
    }
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        .trim()
}

fn record<'a>(records: &'a [serde_json::Value], action: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["action"] == action)
        .unwrap_or_else(|| panic!("no {action} record in {records:?}"))
}

fn form_args<'a>(count: &'a str, label: &'a str, custodians: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "ceremony",
        "kek",
        "form",
        "--components",
        count,
        "--label",
        label,
    ];
    for c in custodians {
        args.extend_from_slice(&["--custodian", c]);
    }
    args
}

#[test]
fn init_with_pins_on_file_descriptors_prints_and_audits_the_token_identity() {
    let f = Fixture::new();
    let r = f.init_with("a", "payhsm-prod-a", SO_PIN, USER_PIN, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("token initialized: payhsm-prod-a\n"),
        "{}",
        r.stdout
    );
    let (manufacturer, model) = maker();
    assert_eq!(field(&r.stdout, "manufacturer"), manufacturer);
    assert_eq!(field(&r.stdout, "model"), model);
    let serial = field(&r.stdout, "serial").to_owned();
    assert_eq!(serial.len(), 16, "{serial}");
    assert_eq!(f.token_count(), 1);
    // `ceremony tokens` lists it in its slot with the same identity (no PIN asked).
    let listing = f.hsm.cli(&["ceremony", "tokens"], "", &[]);
    assert_eq!(listing.code(), Some(0), "{}", listing.stderr);
    assert!(
        listing
            .stdout
            .lines()
            .any(|l| l.contains(": initialized label=\"payhsm-prod-a\"")
                && l.contains(&format!("serial={serial:?}"))),
        "{}",
        listing.stdout
    );
    let a = f.dir("a");
    let binding = std::fs::read_to_string(a.join("token.toml")).unwrap();
    assert!(
        binding.contains(&format!("serial = \"{serial}\"")),
        "{binding}"
    );

    // The identity is the audit log's first record, and the export verifies.
    let (text, records) = f.export(&a);
    let init = record(&records, "ceremony_token_initialized");
    // No Cedar policy governs a ceremony: its records say the policy was not asked.
    assert_eq!(init["decision"], "none");
    let detail = init["detail"].as_str().unwrap();
    for part in [
        "label=\"payhsm-prod-a\"".to_owned(),
        format!("serial=\"{serial}\""),
        format!("manufacturer={manufacturer:?}"),
        format!("model={model:?}"),
        "slot=".to_owned(),
    ] {
        assert!(detail.contains(&part), "{detail}");
    }
    let export = f.tmp.path().join("a.jsonl");
    std::fs::write(&export, &text).unwrap();
    let verify = run_cli(&["audit", "verify", export.to_str().unwrap()], "", &[], &[]);
    assert_eq!(verify.code(), Some(0), "{}", verify.stderr);

    // The user PIN set by the SO logs in; a wrong one does not, and is never echoed.
    let ok = f.run(&["ceremony", "kek", "generate", "--label", "kek-a"], &a, "");
    assert_eq!(ok.code(), Some(0), "{}", ok.stderr);
    let wrong = "wrong-user-pin-0000";
    let bad = f.run_pin(
        &["ceremony", "kek", "generate", "--label", "kek-b"],
        &a,
        "",
        wrong,
    );
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("PinIncorrect"), "{}", bad.stderr);
    assert!(!bad.stderr.contains(wrong), "{}", bad.stderr);

    // Both PINs on one descriptor, one line each.
    let b = f.dir("b");
    let r = f.hsm.cli(
        &[
            "ceremony",
            "init",
            "--data-dir",
            b.to_str().unwrap(),
            "--token-label",
            "payhsm-prod-b",
            "--so-pin-fd",
            "3",
            "--user-pin-fd",
            "3",
        ],
        "",
        &[(3, &format!("{SO_PIN}\n{USER_PIN}\n"))],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(f.token_count(), 2);
    let ok = f.run(&["ceremony", "kek", "generate", "--label", "kek-a"], &b, "");
    assert_eq!(ok.code(), Some(0), "{}", ok.stderr);
}

#[test]
fn pins_on_argv_weak_or_equal_pins_are_refused_and_nothing_is_initialized() {
    let f = Fixture::new();
    let d = f.dir("d");
    let dir = d.to_str().unwrap();
    // No option takes a PIN itself.
    for flag in ["--so-pin", "--user-pin", "--pin"] {
        let r = f.hsm.cli(
            &[
                "ceremony",
                "init",
                "--data-dir",
                dir,
                "--token-label",
                "t",
                flag,
                SO_PIN,
            ],
            "",
            &[],
        );
        assert_eq!(r.code(), Some(2), "{flag}: {}", r.stderr);
        assert!(r.stderr.contains("unexpected argument"), "{}", r.stderr);
    }
    // Too short (payhsm's minimum is 8 whatever the token allows), SO or user PIN.
    for (so, user, which) in [
        ("short-1", USER_PIN, "SO PIN"),
        (SO_PIN, "short-2", "user PIN"),
    ] {
        let r = f.init_with("d", "payhsm-prod", so, user, &[]);
        assert_eq!(r.code(), Some(1), "{}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("the {which} is too short: at least 8")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("nothing initialized"), "{}", r.stderr);
        assert!(!r.stderr.contains("short-"), "{}", r.stderr);
    }
    // Too long for the token (SoftHSM2: ulMaxPinLen 255), refused as such; kryoptic sets no
    // bound, so payhsm's own line limit (1,024 bytes) stops the reading instead.
    let (len, code) = match kind() {
        Kind::SoftHsm2 => (256, 1),
        Kind::Kryoptic => (1025, 2),
    };
    let long = "x".repeat(len);
    let r = f.init_with("d", "payhsm-prod", &long, USER_PIN, &[]);
    assert_eq!(r.code(), Some(code), "{}", r.stderr);
    assert!(r.stderr.contains("too long"), "{}", r.stderr);
    assert!(!r.stderr.contains("xxxxxxxx"), "{}", r.stderr);
    // The same PIN for both roles.
    let r = f.init_with("d", "payhsm-prod", SO_PIN, SO_PIN, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("different PINs"), "{}", r.stderr);
    // No descriptor and stdin not a terminal: nothing is read from the pipe.
    let r = f.hsm.cli(
        &[
            "ceremony",
            "init",
            "--data-dir",
            dir,
            "--token-label",
            "payhsm-prod",
        ],
        &format!("{SO_PIN}\n{SO_PIN}\n{USER_PIN}\n{USER_PIN}\n"),
        &[],
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--so-pin-fd"), "{}", r.stderr);
    // A descriptor that is not open.
    let r = f.hsm.cli(
        &[
            "ceremony",
            "init",
            "--data-dir",
            dir,
            "--token-label",
            "payhsm-prod",
            "--so-pin-fd",
            "9",
            "--user-pin-fd",
            "9",
        ],
        "",
        &[],
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not open"), "{}", r.stderr);
    // Nothing was initialized, nothing written.
    assert_eq!(f.token_count(), 0);
    assert!(!d.exists());
    // The label is still free.
    f.init("d", "payhsm-prod");
    assert_eq!(f.token_count(), 1);
}

#[test]
fn an_initialized_token_is_never_initialized_again() {
    let f = Fixture::new();
    let r = f.init_with("a", "payhsm-prod", SO_PIN, USER_PIN, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let a = f.dir("a");
    let ok = f.run(&["ceremony", "kek", "generate", "--label", "kek-1"], &a, "");
    assert_eq!(ok.code(), Some(0), "{}", ok.stderr);

    // Same label, another data directory.
    let r = f.init_with(
        "b",
        "payhsm-prod",
        "other-so-pin-1",
        "other-user-pin-1",
        &[],
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("already initialized"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing initialized"), "{}", r.stderr);
    assert!(!f.dir("b").exists());
    // Its slot, under a new label. SoftHSM2 numbers a token's slot after its serial in the
    // processes that load it later, so the slot ID comes from a listing made now.
    let slot = f.slot_of("payhsm-prod");
    let r = f.init_with(
        "b",
        "payhsm-other",
        "other-so-pin-1",
        "other-user-pin-1",
        &["--slot", &slot],
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("already initialized"), "{}", r.stderr);
    // A slot that does not exist.
    let r = f.init_with(
        "b",
        "payhsm-other",
        "other-so-pin-1",
        "other-user-pin-1",
        &["--slot", "4242424242"],
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("slot 4242424242"), "{}", r.stderr);
    // The same data directory again.
    let r = f.init_with("a", "payhsm-new", SO_PIN, USER_PIN, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("already bound"), "{}", r.stderr);
    assert_eq!(f.token_count(), 1);

    // The token kept its PINs and its KEK.
    let again = f.run(&["ceremony", "kek", "generate", "--label", "kek-1"], &a, "");
    assert_eq!(again.code(), Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    // And only one initialization is on record.
    let (_, records) = f.export(&a);
    let inits = records
        .iter()
        .filter(|r| r["action"] == "ceremony_token_initialized")
        .count();
    assert_eq!(inits, 1);
}

#[test]
fn a_ceremony_on_a_real_token_records_its_named_custodians() {
    let f = Fixture::new();
    let a = f.init("a", "payhsm-prod");
    let components = new_components(2);
    let kcv = software_kcv(&components);

    // Component 2's KCV mistyped: the refusal names whose component it was.
    let mut wrong = components.clone();
    wrong[1].1 = if wrong[1].1 == "0000000000" {
        "1111111111".to_owned()
    } else {
        "0000000000".to_owned()
    };
    let who = ["custodian-1", "spiffe://payhsm.dev/custodian-2"];
    let r = f.run(&form_args("2", "kek", &who), &a, &form_input(&wrong));
    assert_eq!(r.code(), Some(1), "{}", r.stderr);

    let r = f.run(&form_args("2", "kek", &who), &a, &form_input(&components));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("KEK kek formed; KCV {kcv}"));
    // Each prompt names the custodian whose turn it is.
    assert!(
        r.stderr.contains("custodian-1 (1 of 2): component 1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("custodian-2 (2 of 2): KCV of component 2"),
        "{}",
        r.stderr
    );

    let (_, records) = f.export(&a);
    let formed = records
        .iter()
        .find(|r| r["action"] == "ceremony_kek_formed" && r["outcome"] == "created")
        .unwrap();
    assert_eq!(
        formed["principal"],
        "spiffe://payhsm.dev/custodian-1,spiffe://payhsm.dev/custodian-2"
    );
    assert_eq!(
        formed["detail"],
        format!("label=kek kcv={kcv} components=2 custodians=custodian-1,custodian-2")
    );
    let refused = records
        .iter()
        .find(|r| r["outcome"] == "component_kcv_mismatch")
        .unwrap();
    assert_eq!(refused["decision"], "none");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("component=2 of=2 custodian=custodian-2"),
        "{detail}"
    );
}

#[test]
fn unknown_duplicate_or_missing_custodians_are_refused_before_anything_is_imported() {
    let f = Fixture::new();
    let a = f.init("a", "payhsm-prod");
    let components = new_components(2);
    let input = form_input(&components);
    let cases: [(&[&str], i32, &str); 6] = [
        (&[], 2, "name the 2 custodians"),
        (&["custodian-1"], 2, "1 custodians named for 2 components"),
        (
            &["custodian-1", "custodian-9"],
            1,
            "\"custodian-9\" is not in the",
        ),
        (&["custodian-1", "gateway"], 1, "\"gateway\" is not in the"),
        (&["custodian-2", "custodian-2"], 1, "named twice"),
        (
            &["custodian-3", "spiffe://payhsm.dev/custodian-3"],
            1,
            "named twice",
        ),
    ];
    for (who, code, message) in cases {
        // No user PIN given at all: the custodians are checked before the PIN is read.
        let mut args = form_args("2", "kek", who);
        args.extend_from_slice(&["--data-dir", a.to_str().unwrap()]);
        let r = f.hsm.cli(&args, &input, &[]);
        assert_eq!(r.code(), Some(code), "{who:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{who:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
    // Restore counts one custodian per share line.
    let r = f.run(
        &[
            "ceremony",
            "restore",
            "--shares",
            "2",
            "--label",
            "kek",
            "--expect-kcv",
            "0123456789",
            "--custodian",
            "custodian-1",
        ],
        &a,
        "",
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("1 custodians named for 2 shares"),
        "{}",
        r.stderr
    );

    // Nothing was imported: the label is free for a proper ceremony.
    let r = f.run(
        &form_args("2", "kek", &["custodian-2", "custodian-3"]),
        &a,
        &input,
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
}

#[test]
fn no_component_share_or_pin_appears_in_any_log_or_file() {
    let f = Fixture::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let (so_b, user_b) = ("so-pin-of-token-b-4411", "user-pin-of-token-b-9a07");
    let r = f.init_with("a", "payhsm-a", SO_PIN, USER_PIN, &[]);
    assert_eq!(keep(&mut texts, "init a", &r), Some(0), "{}", r.stderr);
    texts.push(("init a stdout".into(), r.stdout.clone()));
    let r = f.init_with("b", "payhsm-b", so_b, user_b, &[]);
    assert_eq!(keep(&mut texts, "init b", &r), Some(0), "{}", r.stderr);
    texts.push(("init b stdout".into(), r.stdout.clone()));
    let (a, b) = (f.dir("a"), f.dir("b"));

    let components = new_components(3);
    let kcv = software_kcv(&components);
    let who = ["custodian-1", "custodian-2", "custodian-3"];
    let r = f.run(&form_args("3", "kek", &who), &a, &form_input(&components));
    assert_eq!(keep(&mut texts, "form", &r), Some(0), "{}", r.stderr);
    texts.push(("form stdout".into(), r.stdout.clone()));

    let mut backup = vec![
        "ceremony",
        "backup",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--components",
        "3",
        "--label",
        "kek",
    ];
    for c in who {
        backup.extend_from_slice(&["--custodian", c]);
    }
    let r = f.run(&backup, &a, &form_input(&components));
    assert_eq!(keep(&mut texts, "backup", &r), Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    let shares: Vec<String> = lines[..3]
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // share x of 3: payhsm-share-v1 SETID 2-of-3 x V V ... V CHECKSUM
            fields[8..fields.len() - 1].join(" ")
        })
        .collect();

    let r = f.hsm.cli(
        &[
            "ceremony",
            "restore",
            "--data-dir",
            b.to_str().unwrap(),
            "--user-pin-fd",
            "3",
            "--shares",
            "2",
            "--label",
            "kek",
            "--expect-kcv",
            &kcv,
            "--custodian",
            "custodian-3",
            "--custodian",
            "custodian-1",
        ],
        &format!("{}\n{}\n", lines[2], lines[0]),
        &[(3, &format!("{user_b}\n"))],
    );
    assert_eq!(keep(&mut texts, "restore", &r), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("KEK kek restored; KCV {kcv}"));
    texts.push(("restore stdout".into(), r.stdout.clone()));

    // The audit logs, exported into the data directories (so the scan covers them).
    for (dir, pin) in [(&a, USER_PIN), (&b, user_b)] {
        let out = dir.join("audit-export.jsonl");
        let r = f.run_pin(
            &["audit", "export", "--out", out.to_str().unwrap()],
            dir,
            "",
            pin,
        );
        assert_eq!(keep(&mut texts, "export", &r), Some(0), "{}", r.stderr);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("ceremony_token_initialized"), "{text}");
    }

    // The secrets: each component, each share value, the KEK, the four PINs.
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for (hex, _) in &components {
        secrets.extend(needles(hex));
    }
    for share in &shares {
        assert_eq!(share.len(), 16 * 4 + 15, "{share}");
        secrets.extend(needles(share));
    }
    secrets.extend(needles(&key_hex(&components)));
    for pin in [SO_PIN, USER_PIN, so_b, user_b] {
        secrets.extend(text_needles(pin));
    }

    // Control: the scanner finds every needle form in a planted file.
    let control = tempfile::tempdir().unwrap();
    let digits: String = components[0].0.split(' ').collect();
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let planted = [
        digits.to_lowercase().into_bytes(),
        raw,
        shares[1].clone().into_bytes(),
        USER_PIN.as_bytes().to_vec(),
        SO_PIN
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
            .into_bytes(),
    ];
    for (i, p) in planted.iter().enumerate() {
        std::fs::write(control.path().join(format!("planted-{i}")), p).unwrap();
    }
    let hits = find_needles(&read_files(&[control.path()]), &secrets);
    for i in 0..planted.len() {
        assert!(
            hits.iter().any(|h| h.contains(&format!("planted-{i}"))),
            "the scanner missed planted-{i}: {hits:?}"
        );
    }

    // The scan: every file of both data directories and of the token store, every
    // stderr, and the stdout of the commands whose purpose is not to print secrets.
    let mut haystacks = read_files(&[&a, &b, f.hsm.dir.path()]);
    assert!(
        haystacks.len() >= 6,
        "{:?}",
        haystacks.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    haystacks.extend(
        texts
            .iter()
            .map(|(n, t)| (n.clone(), t.as_bytes().to_vec())),
    );
    let hits = find_needles(&haystacks, &secrets);
    assert!(hits.is_empty(), "secrets found: {hits:?}");
}

#[test]
fn the_evidence_report_of_a_token_bound_directory_names_the_ceremonys_custodians() {
    let f = Fixture::new();
    let a = f.init("a", "payhsm-prod");
    let components = new_components(2);
    let kcv = software_kcv(&components);
    let who = ["custodian-1", "custodian-2"];
    let r = f.run(
        &form_args("2", "payhsm-kek", &who),
        &a,
        &form_input(&components),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);

    let d = time::OffsetDateTime::now_utc().date();
    let today = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let args = [
        "audit", "report", "--since", &today, "--until", &today, "--format", "json",
    ];
    let r = f.run(&args, &a, "");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let answer: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys = &answer["report"]["pci_dss_3_6_3_7"];
    let formed = keys["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "ceremony_kek_formed")
        .unwrap();
    assert_eq!(formed["kind"], "ceremony");
    assert_eq!(
        formed["custodians"],
        serde_json::json!([
            "spiffe://payhsm.dev/custodian-1",
            "spiffe://payhsm.dev/custodian-2"
        ])
    );
    let kek = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "key-encryption")
        .unwrap();
    assert_eq!(kek["check"], format!("KCV {kcv}"));

    // It verifies against the audit key that signs the directory's exports, and re-derives
    // from the export.
    let (export, records) = f.export(&a);
    let point = records.last().unwrap()["checkpoint"]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let point: [u8; 65] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(point)
        .unwrap()
        .try_into()
        .unwrap();
    let jwk = payhsm::jose::Jwk::from_public_key(payhsm::keys::EcPublicKey(point));
    let files = f.dir("files");
    std::fs::create_dir_all(&files).unwrap();
    let (report, jwks, log) = (
        files.join("report.json"),
        files.join("jwks.json"),
        files.join("export.jsonl"),
    );
    std::fs::write(&report, &r.stdout).unwrap();
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [jwk.to_json()]}).to_string(),
    )
    .unwrap();
    std::fs::write(&log, export).unwrap();
    let v = f.hsm.cli(
        &[
            "audit",
            "verify-report",
            report.to_str().unwrap(),
            "--jwks",
            jwks.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert_eq!(v.code(), Some(0), "{}{}", v.stdout, v.stderr);
}
