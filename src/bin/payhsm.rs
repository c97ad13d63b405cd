//! `payhsm`: the client, PKI and audit command line for the payhsm daemon.

fn main() {
    std::process::exit(payhsm::cli::main());
}
