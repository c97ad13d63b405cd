//! `payhsm bench`: turns the arguments into [`BenchOptions`], runs each scenario on a
//! multi-threaded runtime and prints the table or the JSON lines as each one finishes.

use super::args::{BenchArgs, ConnectArgs};
use super::output::{fail, CliError, EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};
use crate::bench::replicas::Replicas;
use crate::bench::report::{RunInfo, TABLE_HEADER};
use crate::bench::{self, BenchOptions, Limit};
use crate::card::Domain;
use crate::client::ClientIdentity;
use std::io::Write;
use std::time::Duration;

/// The timed phase when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Runs `payhsm bench` and returns the exit code.
pub fn run(args: &BenchArgs, connect: &ConnectArgs) -> i32 {
    let opts = match options(args, connect) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::Usage(format!("starting the runtime: {e}"))),
    };
    let argv: Vec<String> = std::env::args().collect();
    let info = RunInfo::detect(&argv, connect.http2, &opts.replicas);
    if !args.json {
        println!("{}\n\n{TABLE_HEADER}", info.header());
    }
    let mut code = EXIT_OK;
    for &scenario in &args.scenario.0 {
        let outcome = match runtime.block_on(bench::run(&opts, scenario)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("payhsm: bench {}: {e}", scenario.name());
                code = EXIT_USAGE;
                continue;
            }
        };
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            writeln!(out, "{}", outcome.json(&info))
        } else {
            writeln!(out, "{}", outcome.row()).and_then(|()| {
                outcome
                    .notes()
                    .iter()
                    .try_for_each(|n| writeln!(out, "{n}"))
            })
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            return fail(&CliError::Usage(format!("writing to stdout: {e}")));
        }
        if outcome.error_rate() > args.max_error_rate {
            eprintln!(
                "payhsm: bench {}: {} of {} operations failed ({:.3}%), above --max-error-rate {}",
                scenario.name(),
                outcome.error_count(),
                outcome.ops + outcome.error_count(),
                outcome.error_rate() * 100.0,
                args.max_error_rate
            );
            if code == EXIT_OK {
                code = EXIT_API_ERROR;
            }
        }
    }
    code
}

fn options(args: &BenchArgs, connect: &ConnectArgs) -> Result<BenchOptions, CliError> {
    let domain = Domain::parse(&args.domain)
        .map_err(|e| CliError::Usage(format!("--domain {:?}: {e}", args.domain)))?;
    if !(0.0..=1.0).contains(&args.max_error_rate) {
        return Err(CliError::Usage(
            "--max-error-rate must be a fraction from 0 to 1".to_owned(),
        ));
    }
    let limit = match (args.duration, args.requests) {
        (_, Some(n)) => Limit::Requests(n),
        (Some(s), None) => Limit::Duration(Duration::from_secs(s)),
        (None, None) => Limit::Duration(DEFAULT_DURATION),
    };
    let replicas =
        Replicas::new(connect.url.clone()).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(BenchOptions {
        // Each connection names its replica's URL; the options carry the rest.
        client: connect.client_options_for(replicas.first()),
        replicas,
        reader: ClientIdentity {
            cert: args.reader_cert.clone(),
            key: args.reader_key.clone(),
        },
        connections: args.connections as usize,
        limit,
        warmup: Duration::from_secs(args.warmup),
        domain: domain.as_str().to_owned(),
        seed: args.seed,
        pool: args.pool,
        request_timeout: Duration::from_secs(connect.timeout.max(1)),
        server_pid: args.server_pid,
        flood: args.flood.map(|n| crate::bench::FloodOptions {
            sockets: n as usize,
            from: args.flood_from,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Scenario;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    fn options_of(a: &(BenchArgs, ConnectArgs)) -> Result<BenchOptions, CliError> {
        options(&a.0, &a.1)
    }

    fn bench_args(argv: &[&str]) -> (BenchArgs, ConnectArgs) {
        let mut full = vec!["payhsm", "bench"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).unwrap();
        match cli.command {
            Command::Bench(b) => (b, cli.connect),
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn defaults_run_all_scenarios_for_ten_seconds_on_64_connections() {
        let a = bench_args(&[]);
        assert_eq!(a.0.scenario.0, Scenario::ALL.to_vec());
        let o = options(&a.0, &a.1).unwrap();
        assert_eq!(o.connections, 64);
        assert_eq!(o.limit, Limit::Duration(Duration::from_secs(10)));
        assert_eq!(o.warmup, Duration::from_secs(2));
        assert_eq!(o.domain, "shop");
        assert!(o.reader.cert.ends_with("vault-reader.pem"));
        assert!(o.client.identity.unwrap().cert.ends_with("gateway.pem"));
    }

    #[test]
    fn one_scenario_and_a_request_count() {
        let a = bench_args(&[
            "--scenario",
            "detokenize",
            "--requests",
            "20",
            "--connections",
            "2",
        ]);
        assert_eq!(a.0.scenario.0, vec![Scenario::Detokenize]);
        assert_eq!(options(&a.0, &a.1).unwrap().limit, Limit::Requests(20));
    }

    #[test]
    fn each_url_is_a_replica_in_the_order_given() {
        let o = options_of(&bench_args(&[
            "--url",
            "https://10.0.0.1:8443",
            "--url",
            "https://10.0.0.2:8443",
        ]))
        .unwrap();
        assert_eq!(
            o.replicas.urls(),
            ["https://10.0.0.1:8443", "https://10.0.0.2:8443"]
        );
        assert_eq!(o.client.url, "https://10.0.0.1:8443");
        assert!(options_of(&bench_args(&[
            "--url",
            "https://a:1",
            "--url",
            "http://b:2"
        ]))
        .is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let parse = |argv: &[&str]| {
            let mut full = vec!["payhsm", "bench"];
            full.extend_from_slice(argv);
            Cli::try_parse_from(full)
        };
        assert!(parse(&["--scenario", "nope"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--duration", "5", "--requests", "5"]).is_err());
        assert!(options_of(&bench_args(&["--domain", "Not A Domain"])).is_err());
        assert!(options_of(&bench_args(&["--max-error-rate", "2"])).is_err());
    }
}
