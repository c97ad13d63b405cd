//! A connection to the daemon for the CLI subcommands that make several calls (`keys`,
//! `audit export --url`), with the runtime that drives it.

use super::args::ConnectArgs;
use super::output::CliError;
use crate::client::{Client, Response};
use hyper::Method;
use serde_json::Value;
use std::time::Duration;

/// A connection to the daemon and the runtime that drives it.
pub(super) struct Session {
    runtime: tokio::runtime::Runtime,
    client: Client,
    timeout: Duration,
}

impl Session {
    pub(super) fn open(connect: &ConnectArgs) -> Result<Self, CliError> {
        let opts = connect.client_options()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Usage(format!("starting the runtime: {e}")))?;
        let timeout = Duration::from_secs(connect.timeout);
        let client = runtime
            .block_on(async { tokio::time::timeout(timeout, Client::connect(&opts)).await })
            .map_err(|_| {
                CliError::Usage(format!(
                    "no answer from {} within {}s",
                    opts.url, connect.timeout
                ))
            })??;
        Ok(Self {
            runtime,
            client,
            timeout,
        })
    }

    /// Sends `body` (JSON, possibly holding PANs: the client wipes it once sent).
    pub(super) fn send_bytes(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Response, CliError> {
        let (client, timeout) = (&mut self.client, self.timeout);
        self.runtime
            .block_on(async {
                tokio::time::timeout(timeout, client.request(method, path, Some(body))).await
            })
            .map_err(|_| CliError::Usage(format!("no answer within {}s", timeout.as_secs())))?
            .map_err(CliError::from)
    }

    pub(super) fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response, CliError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let (client, timeout) = (&mut self.client, self.timeout);
        self.runtime
            .block_on(async {
                tokio::time::timeout(timeout, client.request(method, path, body)).await
            })
            .map_err(|_| CliError::Usage(format!("no answer within {}s", timeout.as_secs())))?
            .map_err(CliError::from)
    }
}
