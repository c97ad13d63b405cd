//! Command-line parsing: every subcommand, defaults, and what clap must refuse.

use super::*;
use clap::error::ErrorKind;
use std::path::PathBuf;

fn parse(argv: &[&str]) -> Cli {
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("{argv:?}: {e}"),
    }
}

fn refused(argv: &[&str]) -> ErrorKind {
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{argv:?} parsed: {cli:?}"),
        Err(e) => e.kind(),
    }
}

fn tokens(argv: &[&str]) -> TokensArgs {
    match parse(argv).command {
        Command::Tokens(t) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_options_have_the_documented_defaults() {
    // The environment could override defaults; these tests assume it does not set them.
    if ["PAYHSM_URL", "PAYHSM_CA", "PAYHSM_CERT", "PAYHSM_KEY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return;
    }
    let t = parse(&["payhsm", "tokens", "get", "123", "--domain", "d"]);
    assert_eq!(t.connect.url, ["https://127.0.0.1:8443"]);
    assert_eq!(t.connect.ca, PathBuf::from("keys-sample/ca.pem"));
    assert_eq!(
        t.connect.cert,
        PathBuf::from("keys-sample/clients/gateway.pem")
    );
    assert_eq!(
        t.connect.key,
        PathBuf::from("keys-sample/clients/gateway.key")
    );
    assert!(!t.connect.http2);
    assert_eq!(t.connect.timeout, 30);
}

#[test]
fn connect_options_are_accepted_before_and_after_the_operation() {
    let t = parse(&[
        "payhsm",
        "tokens",
        "--url",
        "https://[::1]:9443",
        "get",
        "123",
        "--domain",
        "d",
        "--http2",
        "--ca",
        "ca.pem",
        "--cert",
        "c.pem",
        "--key",
        "c.key",
    ]);
    assert_eq!(t.connect.url, ["https://[::1]:9443"]);
    assert!(t.connect.http2);
    let opts = t.connect.client_options().unwrap();
    assert_eq!(opts.url, "https://[::1]:9443");
    assert_eq!(opts.ca, PathBuf::from("ca.pem"));
    let id = opts.identity.unwrap();
    assert_eq!(
        (id.cert, id.key),
        (PathBuf::from("c.pem"), PathBuf::from("c.key"))
    );
}

#[test]
fn tokens_create_parses_pan_expiry_and_domain() {
    let t = tokens(&[
        "payhsm",
        "tokens",
        "create",
        "--pan",
        "-",
        "--exp-month",
        "7",
        "--exp-year",
        "2031",
        "--domain",
        "ecom",
    ]);
    match t.command {
        TokensCommand::Create(c) => {
            assert_eq!(c.pan, PanInput::Stdin);
            assert_eq!((c.exp_month, c.exp_year), (Some(7), Some(2031)));
            assert_eq!(c.domain, "ecom");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tokens_create_debug_never_shows_a_literal_pan() {
    let t = tokens(&[
        "payhsm",
        "tokens",
        "create",
        "--pan",
        "4111111111111111",
        "--domain",
        "d",
    ]);
    let shown = format!("{t:?}");
    assert!(!shown.contains("4111111111111111"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn tokens_create_refuses_bad_input() {
    let base = ["payhsm", "tokens", "create"];
    let with = |extra: &[&str]| refused(&[&base[..], extra].concat());
    assert_eq!(with(&["--domain", "d"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(with(&["--pan", "-"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(
        with(&["--pan", "", "--domain", "d"]),
        ErrorKind::ValueValidation
    );
    // Expiry month and year go together.
    assert_eq!(
        with(&["--pan", "-", "--domain", "d", "--exp-month", "1"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        with(&[
            "--pan",
            "-",
            "--domain",
            "d",
            "--exp-month",
            "13",
            "--exp-year",
            "2030"
        ]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        with(&[
            "--pan",
            "-",
            "--domain",
            "d",
            "--exp-month",
            "1",
            "--exp-year",
            "30"
        ]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn tokens_detokenize_parses_token_and_domain() {
    let t = tokens(&[
        "payhsm",
        "tokens",
        "detokenize",
        "--token",
        "T1",
        "--domain",
        "d",
    ]);
    match t.command {
        TokensCommand::Detokenize(d) => {
            assert_eq!((d.token.as_str(), d.domain.as_str()), ("T1", "d"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused(&["payhsm", "tokens", "detokenize", "--domain", "d"]),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn tokens_lifecycle_subcommands_take_a_token_and_a_domain() {
    for sub in ["get", "suspend", "resume", "delete"] {
        let t = tokens(&["payhsm", "tokens", sub, "T9", "--domain", "d"]);
        let r = match t.command {
            TokensCommand::Get(r)
            | TokensCommand::Suspend(r)
            | TokensCommand::Resume(r)
            | TokensCommand::Delete(r) => r,
            other => panic!("{sub}: {other:?}"),
        };
        assert_eq!((r.token.as_str(), r.domain.as_str()), ("T9", "d"), "{sub}");
        assert_eq!(
            refused(&["payhsm", "tokens", sub, "T9"]),
            ErrorKind::MissingRequiredArgument,
            "{sub}"
        );
    }
}

#[test]
fn tokens_without_an_operation_is_refused() {
    assert_eq!(
        refused(&["payhsm", "tokens"]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

#[test]
fn health_flags_parse_and_exclude_each_other() {
    let cli = parse(&["payhsm", "health", "--ready", "--url", "https://h:1"]);
    assert_eq!(cli.connect.url, ["https://h:1"]);
    match cli.command {
        Command::Health(h) => {
            assert!(h.ready && !h.metrics);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused(&["payhsm", "health", "--ready", "--metrics"]),
        ErrorKind::ArgumentConflict
    );
}

#[test]
fn pki_dev_defaults_to_keys_sample() {
    match parse(&["payhsm", "pki", "dev"]).command {
        Command::Pki(PkiArgs {
            command: PkiCommand::Dev { out },
        }) => {
            assert_eq!(out, PathBuf::from("keys-sample"))
        }
        other => panic!("{other:?}"),
    }
    match parse(&["payhsm", "pki", "dev", "--out", "/tmp/x"]).command {
        Command::Pki(PkiArgs {
            command: PkiCommand::Dev { out },
        }) => {
            assert_eq!(out, PathBuf::from("/tmp/x"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn audit_export_and_verify_parse() {
    match parse(&["payhsm", "audit", "export", "--data-dir", "/var/lib/payhsm"]).command {
        Command::Audit(AuditArgs {
            command:
                AuditCommand::Export {
                    data_dir,
                    out,
                    user_pin_fd,
                    ..
                },
        }) => {
            assert_eq!(data_dir, Some(PathBuf::from("/var/lib/payhsm")));
            assert_eq!(out, None);
            assert_eq!(user_pin_fd, None);
        }
        other => panic!("{other:?}"),
    }
    match parse(&[
        "payhsm",
        "audit",
        "verify",
        "log.jsonl",
        "--public-key",
        "k.pem",
    ])
    .command
    {
        Command::Audit(AuditArgs {
            command: AuditCommand::Verify { file, public_key },
        }) => {
            assert_eq!(file, PathBuf::from("log.jsonl"));
            assert_eq!(public_key, Some(PathBuf::from("k.pem")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unwired_commands_fail_with_exit_code_2() {
    assert_eq!(
        run(parse(&["payhsm", "audit", "verify", "log.jsonl"])),
        EXIT_USAGE
    );
}

#[test]
fn unknown_subcommand_is_refused() {
    assert_eq!(refused(&["payhsm", "tokenz"]), ErrorKind::InvalidSubcommand);
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn authz_verify_takes_a_jws_or_stdin_and_a_jwks() {
    for (argv, want_jws, want_jwks) in [
        (
            &["payhsm", "authz", "verify", "a.b.c", "--jwks", "keys.json"][..],
            "a.b.c",
            "keys.json",
        ),
        (
            &[
                "payhsm",
                "authz",
                "--url",
                "https://h:1",
                "verify",
                "-",
                "--jwks",
                "https://h:1/v1/keys/jwks",
            ][..],
            "-",
            "https://h:1/v1/keys/jwks",
        ),
    ] {
        match parse(argv).command {
            Command::Authz(AuthzArgs {
                command:
                    AuthzCommand::Verify {
                        jws,
                        jwks,
                        leeway,
                        at,
                    },
                ..
            }) => {
                assert_eq!((jws.as_str(), jwks.as_str()), (want_jws, want_jwks));
                assert_eq!((leeway, at), (60, None), "the defaults");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        refused(&["payhsm", "authz", "verify", "a.b.c"]),
        ErrorKind::MissingRequiredArgument
    );
    for leeway in ["301", "ten"] {
        assert_eq!(
            refused(&["payhsm", "authz", "verify", "a.b.c", "--jwks", "f", "--leeway", leeway]),
            ErrorKind::ValueValidation,
            "{leeway}"
        );
    }
    assert_eq!(
        refused(&["payhsm", "authz"]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

/// A `payhsm bench` command line: its connection options (the bench's own are not needed).
fn bench(argv: &[&str]) -> Cli {
    let cli = parse(argv);
    assert!(
        matches!(cli.command, Command::Bench(_)),
        "{:?}",
        cli.command
    );
    cli
}

#[test]
fn bench_takes_one_url_per_replica_and_they_replace_the_default() {
    let b = bench(&[
        "payhsm",
        "bench",
        "--url",
        "https://10.0.0.1:8443",
        "--scenario",
        "noop",
        "--url",
        "https://10.0.0.2:8443",
    ]);
    // Not the default followed by the two: the values given replace it.
    assert_eq!(
        b.connect.url,
        ["https://10.0.0.1:8443", "https://10.0.0.2:8443"]
    );
    let one = bench(&["payhsm", "bench", "--url", "https://10.0.0.1:8443"]);
    assert_eq!(one.connect.url, ["https://10.0.0.1:8443"]);
    if std::env::var_os("PAYHSM_URL").is_none() {
        assert_eq!(
            bench(&["payhsm", "bench"]).connect.url,
            ["https://127.0.0.1:8443"]
        );
    }
}

#[test]
fn a_url_repeated_across_levels_is_refused_though_clap_keeps_only_the_inner_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let inner = format!("--url={url}");
    // clap (issue 3938) drops the outer value of a global option given at two levels...
    let argv = [
        "payhsm",
        "tokens",
        "--url",
        "https://127.0.0.1:9",
        "get",
        "T",
        "--domain",
        "d",
        &inner,
        "--timeout",
        "1",
    ];
    assert_eq!(parse(&argv).connect.url, [url.as_str()]);
    // ...so the command line itself is counted: refused before any connection is tried.
    let os: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
    assert_eq!(args::url_occurrences(&os), 2);
    assert_eq!(main_from(os), EXIT_USAGE);
    assert!(listener.accept().is_err(), "connected");
    // A `--url` after `--` is a value, not the option.
    let escaped: Vec<std::ffi::OsString> = ["payhsm", "--url", "x", "--", "--url"]
        .iter()
        .map(Into::into)
        .collect();
    assert_eq!(args::url_occurrences(&escaped), 1);
}

#[test]
fn a_repeated_url_is_a_usage_error_outside_bench() {
    let t = parse(&[
        "payhsm",
        "tokens",
        "get",
        "T",
        "--domain",
        "d",
        "--url",
        "https://a:1",
        "--url",
        "https://b:2",
    ]);
    match t.connect.client_options() {
        Err(CliError::Usage(m)) => {
            assert_eq!(m, "--url is given once, except for `payhsm bench`")
        }
        other => panic!("{other:?}"),
    }
    // Refused before any connection is tried: the listener is never connected to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let jwks = format!("{url}/v1/keys/jwks");
    let twice = ["--url", &url, "--url", &url, "--timeout", "1"];
    for argv in [
        &["payhsm", "tokens", "get", "T", "--domain", "d"][..],
        &["payhsm", "health", "--ready"][..],
        &["payhsm", "keys", "list"][..],
        &["payhsm", "audit", "export"][..],
        &["payhsm", "authz", "verify", "a.b.c", "--jwks", &jwks][..],
    ] {
        let full: Vec<&str> = argv.iter().chain(twice.iter()).copied().collect();
        assert_eq!(run(parse(&full)), EXIT_USAGE, "{full:?}");
        assert!(listener.accept().is_err(), "{full:?} connected");
    }
}

#[test]
fn connect_options_are_accepted_before_the_subcommand_too() {
    let cli = parse(&[
        "payhsm",
        "--cert",
        "c.pem",
        "--key",
        "c.key",
        "--url",
        "https://h:1",
        "tokens",
        "detokenize",
        "--token",
        "4111110000001111",
        "--domain",
        "shop",
    ]);
    assert_eq!(cli.connect.cert, PathBuf::from("c.pem"));
    assert_eq!(cli.connect.key, PathBuf::from("c.key"));
    assert_eq!(cli.connect.url, ["https://h:1"]);
    let audit = parse(&["payhsm", "--timeout", "5", "audit", "export", "--out", "x"]);
    assert_eq!(audit.connect.timeout, 5);
}

/// Every `payhsm` command line in the README's shell blocks parses (the variables and
/// placeholders they use filled in): a README example the CLI refuses is a bug.
#[test]
fn every_payhsm_command_line_in_the_readme_parses() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut vars: Vec<(String, String)> = vec![
        ("$JWS".into(), "a.b.c".into()),
        ("<token>".into(), "4111110000001111".into()),
        ("<KCV>".into(), "0A1B2C".into()),
    ];
    let mut in_sh = false;
    let mut joined = String::new();
    let mut checked = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        // A comment starts at ` #` outside quotes; a trailing `\` continues the line.
        let code = line.split(" #").next().unwrap_or_default().trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(code);
        let full = std::mem::take(&mut joined);
        // `NAME=value` or `NAME="several words"` at the start of a command.
        for segment in full.split(';') {
            let segment = segment.trim();
            let Some((name, rest)) = segment.split_once('=') else {
                continue;
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                continue;
            }
            let value = match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => rest.split_whitespace().next().unwrap_or_default(),
            };
            vars.push((format!("${name}"), value.to_owned()));
        }
        let mut full = full;
        for (name, value) in vars.iter().rev() {
            full = full.replace(name.as_str(), value);
        }
        for segment in full.split([';', '|']) {
            let words: Vec<&str> = segment
                .split_whitespace()
                .take_while(|w| !w.starts_with('>'))
                .map(|w| w.trim_matches('"'))
                .collect();
            if words.first() != Some(&"payhsm") {
                continue;
            }
            let parsed = Cli::try_parse_from(&words);
            assert!(
                parsed.is_ok(),
                "README: `{}`: {:?}",
                words.join(" "),
                parsed.err()
            );
            let argv: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
            assert!(super::args::url_occurrences(&argv) <= 1, "{words:?}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} command lines found");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let cli = parse(&["payhsm", "completions", shell]);
        let Command::Completions { shell } = cli.command else {
            panic!("not completions")
        };
        let mut out = Vec::new();
        clap_complete::generate(
            shell,
            &mut <Cli as clap::CommandFactory>::command(),
            "payhsm",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("detokenize") && text.contains("--cert"),
            "{shell}"
        );
    }
    assert!(Cli::try_parse_from(["payhsm", "completions", "tcsh"]).is_err());
}

#[test]
fn files_read_by_the_verifiers_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![b'x'; 11]).unwrap();
    assert_eq!(super::audit::read_bounded(&path, 11).unwrap().len(), 11);
    let e = super::audit::read_bounded(&path, 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 10 bytes"), "{e}");
}
