//! `payhsm ceremony` end to end: the real CLI binary, real tokens in the module under test
//! (SoftHSM2, or the module `PAYHSM_TEST_PKCS11_MODULE` names), stdin piped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::ceremony::*;
use support::*;

const DEV_USER_PIN: &str = "payhsm-dev-user-pin";
const DEV_SO_PIN: &str = "payhsm-dev-so-pin";

/// Runs `payhsm` with `stdin` piped in; stdout and stderr as text. A command on a data
/// directory reaches its dev token in the module under test: for a module other than
/// SoftHSM2 (whose store `payhsm` keeps under the directory itself) the module's store
/// configuration is set (`dev_token_store`) and `ceremony init` gets `--module`.
fn cli(args: &[&str], stdin: &str) -> (Output, String, String) {
    let store = data_dir_arg(args).and_then(dev_token_store);
    let module = softhsm::module_path();
    let mut all = args.to_vec();
    if store.is_some() && matches!(args, ["ceremony", "init", ..]) {
        all.extend_from_slice(&["--module", module.to_str().unwrap()]);
    }
    let env: Vec<(&str, &Path)> = store.iter().map(|(v, c)| (*v, c.as_path())).collect();
    let r = run_cli(&all, stdin, &env, &[]);
    (r.out, r.stdout, r.stderr)
}

/// A fresh dev data directory made by `payhsm ceremony init --dev`.
fn init_dir(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    let (out, _, err) = cli(
        &[
            "ceremony",
            "init",
            "--dev",
            "--data-dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{err}");
    dir
}

fn form(dir: &Path, label: &str, components: &[(String, String)]) -> (Output, String, String) {
    cli(
        &[
            "ceremony",
            "kek",
            "form",
            "--data-dir",
            dir.to_str().unwrap(),
            "--components",
            &components.len().to_string(),
            "--label",
            label,
        ],
        &form_input(components),
    )
}

/// No secret (component, share value, PIN) in any file under `dirs` or in `texts`.
fn assert_no_secret(dirs: &[&Path], texts: &[&str], secrets: &[String]) {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    assert!(files.len() >= 3, "{files:?}");
    let mut haystacks: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    for (i, t) in texts.iter().enumerate() {
        haystacks.push((format!("stderr #{i}"), t.as_bytes().to_vec()));
    }
    let mut all: Vec<Vec<u8>> = secrets.iter().flat_map(|s| needles(s)).collect();
    // Positive control: each needle is found in the forms a secret can take.
    for secret in secrets {
        let digits: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
        let mut hay = format!("{secret} {digits} {}", digits.to_lowercase()).into_bytes();
        hay.extend(
            (0..digits.len() / 2)
                .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap()),
        );
        for n in needles(secret) {
            assert!(hay.windows(n.len()).any(|w| w == n.as_slice()));
        }
    }
    all.push(DEV_USER_PIN.as_bytes().to_vec());
    all.push(DEV_SO_PIN.as_bytes().to_vec());
    for (name, hay) in &haystacks {
        for needle in &all {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle.as_slice()),
                "a secret ({}) appears in {name}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn components_new_prints_n_components_with_their_kcvs_and_refuses_bad_counts() {
    let c = new_components(3);
    assert_ne!(c[0].0, c[1].0);
    assert_ne!(c[1].0, c[2].0);
    for bad in ["1", "10"] {
        let (out, _, _) = cli(
            &["ceremony", "kek", "components", "new", "--count", bad],
            "",
        );
        assert_eq!(out.status.code(), Some(2), "--count {bad}");
    }
}

#[test]
fn kek_formed_from_the_same_components_on_two_tokens_has_one_kcv_and_a_wrong_kcv_imports_nothing() {
    let components = new_components(3);
    let expected = software_kcv(&components);
    let tmp = tempfile::tempdir().unwrap();
    let mut stderrs = Vec::new();

    // Replica A: a `payhsmd dev` data directory (dev KEK, audit key, data key already there).
    let mut daemon = Daemon::start();
    daemon.terminate();
    let a = daemon.data_dir.clone();
    // Replica B: made by `payhsm ceremony init --dev`.
    let b = init_dir(tmp.path(), "b");

    // Component 2's KCV mistyped: refused, naming component 2, nothing imported.
    let mut wrong = components
        .iter()
        .map(|(h, k)| (h.clone(), k.clone()))
        .collect::<Vec<_>>();
    wrong[1].1 = if wrong[1].1 == "0000000000" {
        "1111111111".to_owned()
    } else {
        "0000000000".to_owned()
    };
    let (out, stdout, stderr) = form(&a, "kek-shared", &wrong);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("component 2"), "{stderr}");
    assert!(stderr.contains("nothing imported"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    stderrs.push(stderr);

    // A malformed component is refused the same way.
    let mut short = components
        .iter()
        .map(|(h, k)| (h.clone(), k.clone()))
        .collect::<Vec<_>>();
    short[2].0.truncate(20);
    let (out, _, stderr) = form(&a, "kek-shared", &short);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("component 3"), "{stderr}");
    stderrs.push(stderr);

    // The right values then work under the same label: the refusals imported nothing.
    for dir in [&a, &b] {
        let (out, stdout, stderr) = form(dir, "kek-shared", &components);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            stdout.trim(),
            format!("KEK kek-shared formed; KCV {expected}")
        );
        stderrs.push(stderr);
    }
    // The label is now taken.
    let (out, _, stderr) = form(&b, "kek-shared", &components);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    stderrs.push(stderr);

    // Audited with label, KCV and count; refusals too; never a component.
    let export =
        String::from_utf8(payhsm(&["audit", "export", "--data-dir", a.to_str().unwrap()]).stdout)
            .unwrap();
    assert!(export.contains("\"action\":\"ceremony_kek_formed\""));
    assert!(export.contains(&format!("label=kek-shared kcv={expected} components=3")));
    assert!(export.contains("\"outcome\":\"component_kcv_mismatch\""));

    // A KEK generated in the token has a KCV from the token.
    let (out, stdout, stderr) = cli(
        &[
            "ceremony",
            "kek",
            "generate",
            "--data-dir",
            b.to_str().unwrap(),
            "--label",
            "kek-generated",
        ],
        "",
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("KEK kek-generated generated; KCV "),
        "{stdout}"
    );
    stderrs.push(stderr);

    let secrets: Vec<String> = components.iter().map(|(h, _)| h.clone()).collect();
    let texts: Vec<&str> = stderrs
        .iter()
        .map(String::as_str)
        .chain([export.as_str()])
        .collect();
    let logs = daemon.logs();
    let mut texts = texts;
    texts.push(&logs);
    assert_no_secret(&[&a, &b], &texts, &secrets);
}

#[test]
fn backup_two_of_three_restores_from_shares_one_and_three_on_a_fresh_token() {
    let components = new_components(2);
    let expected = software_kcv(&components);
    let tmp = tempfile::tempdir().unwrap();
    let a = init_dir(tmp.path(), "a");
    let c = init_dir(tmp.path(), "c");
    let mut stderrs = Vec::new();
    let (out, _, stderr) = form(&a, "kek-backup", &components);
    assert!(out.status.success(), "{stderr}");
    stderrs.push(stderr);

    let backup = |comps: &[(String, String)]| {
        cli(
            &[
                "ceremony",
                "backup",
                "--data-dir",
                a.to_str().unwrap(),
                "--threshold",
                "2",
                "--shares",
                "3",
                "--components",
                "2",
                "--label",
                "kek-backup",
            ],
            &form_input(comps),
        )
    };
    // Components of another key are refused: no shares.
    let others = new_components(2);
    let (out, stdout, stderr) = backup(&others);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stdout.contains("payhsm-share-v1"), "{stdout}");
    stderrs.push(stderr);

    let (out, stdout, stderr) = backup(&components);
    assert!(out.status.success(), "{stderr}");
    stderrs.push(stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("share {} of 3: payhsm-share-v1 ", i + 1)),
            "{line}"
        );
    }
    assert!(
        lines[3].starts_with(&format!("KEK kek-backup KCV {expected} ")),
        "{}",
        lines[3]
    );
    let shares_in = format!("{}\n{}\n", lines[0], lines[2]);

    let restore = |expect: &str| {
        cli(
            &[
                "ceremony",
                "restore",
                "--data-dir",
                c.to_str().unwrap(),
                "--shares",
                "2",
                "--label",
                "kek-restored",
                "--expect-kcv",
                expect,
            ],
            &shares_in,
        )
    };
    // A wrong expected KCV: refused before import.
    let (out, stdout, stderr) = restore("0123456789");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing imported"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    stderrs.push(stderr);
    // The label is still free: the right KCV restores it.
    let (out, stdout, stderr) = restore(&expected.to_lowercase());
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("KEK kek-restored restored; KCV {expected}")
    );
    stderrs.push(stderr);

    let export =
        String::from_utf8(payhsm(&["audit", "export", "--data-dir", a.to_str().unwrap()]).stdout)
            .unwrap();
    assert!(export.contains(&format!(
        "label=kek-backup kcv={expected} threshold=2 shares=3"
    )));
    let export_c =
        String::from_utf8(payhsm(&["audit", "export", "--data-dir", c.to_str().unwrap()]).stdout)
            .unwrap();
    assert!(export_c.contains("\"action\":\"ceremony_kek_restored\""));

    let mut secrets: Vec<String> = components
        .iter()
        .chain(others.iter())
        .map(|(h, _)| h.clone())
        .collect();
    // The share values: the grouped hex after "<x> ", before the checksum.
    for line in &lines[..3] {
        let fields: Vec<&str> = line.split(' ').collect();
        // share x of 3: payhsm-share-v1 SETID 2-of-3 x V V ... V CHECKSUM
        let value = fields[8..fields.len() - 1].join(" ");
        assert_eq!(value.len(), 16 * 4 + 15, "{line}");
        secrets.push(value);
    }
    let mut texts: Vec<&str> = stderrs.iter().map(String::as_str).collect();
    texts.push(&export);
    texts.push(&export_c);
    assert_no_secret(&[&a, &c], &texts, &secrets);
}

/// One writer process per store: a ceremony (which writes its audit records) is refused while
/// the daemon has the store open, and changes nothing; an audit export runs beside it.
#[test]
fn a_ceremony_is_refused_while_the_daemon_has_the_store_open() {
    let mut daemon = Daemon::start();
    let dir = daemon.data_dir.clone();
    let generate = || {
        cli(
            &[
                "ceremony",
                "kek",
                "generate",
                "--data-dir",
                dir.to_str().unwrap(),
                "--label",
                "kek-while-running",
            ],
            "",
        )
    };
    let (out, stdout, stderr) = generate();
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");

    let export = payhsm(&["audit", "export", "--data-dir", dir.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(!String::from_utf8_lossy(&export.stdout).contains("kek-while-running"));

    daemon.terminate();
    let (out, stdout, stderr) = generate();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("KEK kek-while-running generated"),
        "{stdout}"
    );
}
