//! Routing and the thin handlers.

use super::authorizations::{
    idempotency_key, AuthorizationResponse, AuthorizeRequest, AuthorizeResponse,
    PaymentChallengeRequest, PaymentChallengeResponse,
};
use super::batch::{
    failed_items, DetokenizeBatchRequest, DetokenizeBatchResponse, TokenizeBatchRequest,
    TokenizeBatchResponse,
};
use super::body::{json, read_body, request_id, require_json, SecretBuf};
use super::devices::{
    owner_from_query, ChallengeRequest, ChallengeResponse, DeviceListResponse, DeviceResponse,
    EnrolRequest, EnrolResponse, RevokeRequest,
};
use super::error::ApiError;
use super::keys::{KeyChangeRequest, KeyChangeResponse, RewrapRequest};
use super::types::{
    audit_query, consistency_query, decode, domain_from_query, numeric_query, proof_query,
    report_query, AuditPageResponse, ConsistencyProofResponse, DetokenizeRequest,
    DetokenizeResponse, DomainBody, ErrorDetail, ErrorResponse, InclusionProofResponse,
    MetadataResponse, TokenizeRequest, TokenizeResponse, TreeHeadResponse,
};
use super::App;
use crate::card::{Domain, StatusChange, Token};
use crate::fault::Chain;
use crate::policy::Principal;
use crate::service::{Caller, ChangeOutcome, Tokenized};
use crate::text::LoggableText;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long `/readyz` waits for each dependency.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

const JSON: &str = "application/json";
/// Verifiers may cache the JWKS for five minutes; a new key is published before it signs.
const JWKS_CACHE_CONTROL: &str = "max-age=300";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";
/// The OpenAPI 3.1 document of this API (`docs/openapi.json`), served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// A matched route. Token path segments are kept raw and parsed by the handler (422).
enum Route<'a> {
    Tokenize,
    Detokenize,
    TokenizeBatch,
    DetokenizeBatch,
    Metadata(&'a str),
    Change(&'a str, StatusChange),
    DeviceChallenge,
    EnrolDevice,
    ListDevices,
    Device(&'a str),
    RevokeDevice(&'a str),
    AuthorizationChallenge,
    Authorize,
    Authorization(&'a str),
    Jwks,
    Keys,
    KeyChange,
    Rewrap,
    Audit,
    AuditJwks,
    AuditSth,
    AuditProof,
    AuditConsistency,
    AuditReport,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
}

/// A successful answer before headers are added.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    /// `cache-control`, when the answer may be cached.
    cache_control: Option<&'static str>,
    body: SecretBuf,
}

impl Reply {
    fn json(status: StatusCode, body: SecretBuf) -> Self {
        Self {
            status,
            content_type: JSON,
            cache_control: None,
            body,
        }
    }
}

/// Answers one request from `principal`. Never fails: errors become JSON error responses.
pub async fn handle<B>(
    app: &App,
    principal: &Principal,
    req: Request<B>,
) -> Response<Full<SecretBuf>>
where
    B: Body + Unpin,
    B::Error: Display,
{
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let caller = Caller {
        principal: principal.clone(),
        request_id: request_id(&parts.headers),
    };
    let (label, route) = resolve(&parts.method, parts.uri.path());
    let body_limit = match route {
        Ok(Route::TokenizeBatch | Route::DetokenizeBatch) => app.max_batch_body_bytes,
        _ => app.max_body_bytes,
    };
    let mut body = ReadToEnd::new(body);
    let result = match route {
        Ok(route) => {
            let request = Incoming {
                caller: &caller,
                label,
                parts: &parts,
                body_limit,
            };
            dispatch(app, &request, route, &mut body).await
        }
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(reply) => respond(reply, &caller.request_id),
        Err(e) => {
            let mut response = error_response(&e, &caller.request_id);
            if response.status().is_server_error() {
                // The one place a 5xx's cause is logged, with the request id the caller got.
                // Causes are payhsm's own messages and the store's or HSM's: never a PAN.
                tracing::error!(
                    request_id = %caller.request_id,
                    route = label,
                    code = e.code(),
                    cause = %Chain(&e),
                    "request failed"
                );
            }
            if parts.version < Version::HTTP_2
                && !skip_unread_body(app, &parts, &mut body, body_limit).await
            {
                // Refused before its body was read, and the rest of it did not arrive (or is
                // over the limit): what follows on the connection is not known to be a request.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    };
    app.metrics
        .record_request(label, response.status().as_u16(), started.elapsed());
    response
}

/// A request body that says whether it was read to its end.
struct ReadToEnd<B> {
    inner: B,
    ended: bool,
}

impl<B> ReadToEnd<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            ended: false,
        }
    }
}

impl<B: Body + Unpin> Body for ReadToEnd<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// After an HTTP/1.1 request was refused before its body was read: reads and discards the
/// rest of the body (within the body limit and timeout) so the connection can serve the next
/// request. `false` when it could not, and the connection must close.
async fn skip_unread_body<B>(
    app: &App,
    parts: &Parts,
    body: &mut ReadToEnd<B>,
    limit: usize,
) -> bool
where
    B: Body + Unpin,
    B::Error: Display,
{
    if !declares_body(parts) || body.ended || body.inner.is_end_stream() {
        return true;
    }
    read_body(&parts.headers, body, limit, app.body_timeout)
        .await
        .is_ok()
}

/// Whether the request says a body follows (RFC 9112 §6.3).
fn declares_body(parts: &Parts) -> bool {
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0");
    length || parts.headers.contains_key(TRANSFER_ENCODING)
}

/// The route for a method and path, with its metrics label.
fn resolve<'a>(method: &Method, path: &'a str) -> (&'static str, Result<Route<'a>, ApiError>) {
    let only = |m: Method, allow: &'static str, route: Route<'a>| {
        if *method == m {
            Ok(route)
        } else {
            Err(ApiError::MethodNotAllowed { allow })
        }
    };
    match path {
        "/healthz" => ("healthz", only(Method::GET, "GET", Route::Healthz)),
        "/readyz" => ("readyz", only(Method::GET, "GET", Route::Readyz)),
        "/metrics" => ("metrics", only(Method::GET, "GET", Route::Metrics)),
        "/v1/tokens" => ("tokenize", only(Method::POST, "POST", Route::Tokenize)),
        "/v1/tokens/detokenize" => ("detokenize", only(Method::POST, "POST", Route::Detokenize)),
        "/v1/tokens/batch" => (
            "tokenize_batch",
            only(Method::POST, "POST", Route::TokenizeBatch),
        ),
        "/v1/tokens/detokenize/batch" => (
            "detokenize_batch",
            only(Method::POST, "POST", Route::DetokenizeBatch),
        ),
        "/v1/devices/challenges" => (
            "device_challenge",
            only(Method::POST, "POST", Route::DeviceChallenge),
        ),
        "/v1/devices" => match *method {
            Method::POST => ("enrol_device", Ok(Route::EnrolDevice)),
            Method::GET => ("list_devices", Ok(Route::ListDevices)),
            _ => (
                "enrol_device",
                Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            ),
        },
        "/v1/authorizations/challenges" => (
            "authorization_challenge",
            only(Method::POST, "POST", Route::AuthorizationChallenge),
        ),
        "/v1/authorizations" => ("authorize", only(Method::POST, "POST", Route::Authorize)),
        "/v1/keys/jwks" => ("jwks", only(Method::GET, "GET", Route::Jwks)),
        "/v1/keys" => ("keys", only(Method::GET, "GET", Route::Keys)),
        "/v1/keys/changes" => ("key_change", only(Method::POST, "POST", Route::KeyChange)),
        "/v1/keys/rewrap" => ("rewrap", only(Method::POST, "POST", Route::Rewrap)),
        "/v1/audit" => ("audit", only(Method::GET, "GET", Route::Audit)),
        "/v1/audit/jwks" => ("audit_jwks", only(Method::GET, "GET", Route::AuditJwks)),
        "/v1/audit/sth" => ("audit_sth", only(Method::GET, "GET", Route::AuditSth)),
        "/v1/audit/proof" => ("audit_proof", only(Method::GET, "GET", Route::AuditProof)),
        "/v1/audit/consistency" => (
            "audit_consistency",
            only(Method::GET, "GET", Route::AuditConsistency),
        ),
        "/v1/audit/report" => ("audit_report", only(Method::GET, "GET", Route::AuditReport)),
        "/v1/openapi.json" => ("openapi", only(Method::GET, "GET", Route::OpenApi)),
        _ if path.starts_with("/v1/authorizations/") => {
            match path.strip_prefix("/v1/authorizations/") {
                Some(id) if !id.is_empty() && !id.contains('/') => (
                    "authorization",
                    only(Method::GET, "GET", Route::Authorization(id)),
                ),
                _ => ("unmatched", Err(ApiError::NotFound)),
            }
        }
        _ if path.starts_with("/v1/devices/") => resolve_device(method, path),
        _ => match path
            .strip_prefix("/v1/tokens/")
            .map(|rest| rest.split('/').collect::<Vec<_>>())
            .as_deref()
        {
            Some([token]) if !token.is_empty() => match *method {
                Method::GET => ("metadata", Ok(Route::Metadata(token))),
                Method::DELETE => ("delete", Ok(Route::Change(token, StatusChange::Delete))),
                _ => (
                    "metadata",
                    Err(ApiError::MethodNotAllowed {
                        allow: "GET, DELETE",
                    }),
                ),
            },
            Some([token, "suspend"]) if !token.is_empty() => (
                "suspend",
                only(
                    Method::POST,
                    "POST",
                    Route::Change(token, StatusChange::Suspend),
                ),
            ),
            Some([token, "resume"]) if !token.is_empty() => (
                "resume",
                only(
                    Method::POST,
                    "POST",
                    Route::Change(token, StatusChange::Resume),
                ),
            ),
            _ => ("unmatched", Err(ApiError::NotFound)),
        },
    }
}

/// `/v1/devices/{id}` (GET) and `/v1/devices/{id}/revoke` (POST).
fn resolve_device<'a>(
    method: &Method,
    path: &'a str,
) -> (&'static str, Result<Route<'a>, ApiError>) {
    let segments = path
        .strip_prefix("/v1/devices/")
        .map(|rest| rest.split('/').collect::<Vec<_>>());
    match segments.as_deref() {
        Some([id]) if !id.is_empty() => match *method {
            Method::GET => ("device", Ok(Route::Device(id))),
            _ => ("device", Err(ApiError::MethodNotAllowed { allow: "GET" })),
        },
        Some([id, "revoke"]) if !id.is_empty() => match *method {
            Method::POST => ("revoke_device", Ok(Route::RevokeDevice(id))),
            _ => (
                "revoke_device",
                Err(ApiError::MethodNotAllowed { allow: "POST" }),
            ),
        },
        _ => ("unmatched", Err(ApiError::NotFound)),
    }
}

/// Fuzzing entry point: the audit routes' query strings. Panics if one is accepted with a
/// parameter it does not hold.
#[allow(clippy::panic)]
pub(crate) fn fuzz_audit_queries(query: &str) {
    if let Ok((after, _)) = audit_query(Some(query)) {
        if after != 0 && !query.contains("after=") {
            panic!("`after` read from a query without it");
        }
    }
    if proof_query(Some(query)).is_ok() && !query.contains("seq=") {
        panic!("a proof query accepted without `seq`");
    }
    if consistency_query(Some(query)).is_ok() && !(query.contains("from=") && query.contains("to="))
    {
        panic!("a consistency query accepted without `from` and `to`");
    }
}

/// Fuzzing entry point: the first byte picks a method, the rest is the path (UTF-8). Panics
/// only if a matched token or authorization id segment is empty or holds a `/`.
#[allow(clippy::panic)]
pub(crate) fn fuzz_resolve(data: &[u8]) {
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PUT,
        Method::HEAD,
    ];
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let (Some(method), Ok(path)) = (
        METHODS.get(usize::from(*first) % METHODS.len()),
        std::str::from_utf8(rest),
    ) else {
        return;
    };
    if let (
        _,
        Ok(Route::Metadata(segment) | Route::Change(segment, _) | Route::Authorization(segment)),
    ) = resolve(method, path)
    {
        if segment.is_empty() || segment.contains('/') {
            panic!("a path segment was matched empty or with a slash");
        }
    }
    if let (_, Ok(Route::Device(id) | Route::RevokeDevice(id))) = resolve(method, path) {
        if id.is_empty() || id.contains('/') {
            panic!("a device path segment was matched empty or with a slash");
        }
    }
}

/// A request as the handlers see it.
struct Incoming<'a> {
    caller: &'a Caller,
    /// The route's metrics label.
    label: &'static str,
    parts: &'a Parts,
    /// The largest body this route reads.
    body_limit: usize,
}

/// Decodes, calls one service function, encodes.
async fn dispatch<B>(
    app: &App,
    request: &Incoming<'_>,
    route: Route<'_>,
    body: B,
) -> Result<Reply, ApiError>
where
    B: Body,
    B::Error: Display,
{
    let (caller, parts) = (request.caller, request.parts);
    match route {
        Route::Tokenize => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let input = decode::<TokenizeRequest>(&bytes)?.into_input()?;
            let (status, view) = match app.vault.tokenize(caller, input).await? {
                Tokenized::Created(v) => (StatusCode::CREATED, v),
                Tokenized::Existing(v) => (StatusCode::OK, v),
            };
            Ok(Reply::json(status, json(&TokenizeResponse::from(&view))?))
        }
        Route::Detokenize => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let (token, domain) = decode::<DetokenizeRequest>(&bytes)?.parse()?;
            let out = app.vault.detokenize(caller, &token, &domain).await?;
            let pan = std::str::from_utf8(out.pan.expose_digits()).map_err(|e| {
                ApiError::Internal(crate::fault::Fault::caused_by(
                    "a detokenized card is not ASCII digits",
                    e,
                ))
            })?;
            let body = json(&DetokenizeResponse {
                pan,
                exp_month: out.expiry.map(|e| e.month()),
                exp_year: out.expiry.map(|e| e.year()),
                receipt: &out.receipt,
            })?;
            Ok(Reply::json(StatusCode::OK, body))
        }
        Route::TokenizeBatch => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, request.body_limit, app.body_timeout).await?;
            let (domain, items) = decode::<TokenizeBatchRequest>(&bytes)?.into_input()?;
            let results = app.vault.tokenize_batch(caller, &domain, &items).await?;
            log_failed_items(request, &results);
            let answer = TokenizeBatchResponse::from(results.as_slice());
            Ok(Reply::json(StatusCode::OK, json(&answer)?))
        }
        Route::DetokenizeBatch => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, request.body_limit, app.body_timeout).await?;
            let (domain, tokens) = decode::<DetokenizeBatchRequest>(&bytes)?.parse()?;
            let results = app.vault.detokenize_batch(caller, &domain, &tokens).await?;
            log_failed_items(request, &results);
            let answer = DetokenizeBatchResponse::new(&results)?;
            Ok(Reply::json(StatusCode::OK, json(&answer)?))
        }
        Route::Metadata(token) => {
            let token = Token::parse(token)?;
            let domain = domain_from_query(parts.uri.query())?.ok_or(ApiError::Malformed(
                "the `domain` query parameter is required",
            ))?;
            let domain = Domain::parse(domain)?;
            let view = app.vault.metadata(caller, &token, &domain).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&MetadataResponse::from(&view))?,
            ))
        }
        Route::Change(token, change) => {
            let token = Token::parse(token)?;
            let domain = lifecycle_domain(app, parts, body).await?;
            let view = app
                .vault
                .change_status(caller, &token, &domain, change)
                .await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&MetadataResponse::from(&view))?,
            ))
        }
        Route::DeviceChallenge => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let (user, rp_id) = decode::<ChallengeRequest>(&bytes)?.parse()?;
            let issued = app.devices.create_challenge(caller, &user, &rp_id).await?;
            Ok(Reply::json(
                StatusCode::CREATED,
                json(&ChallengeResponse::from(&issued))?,
            ))
        }
        Route::EnrolDevice => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let input = decode::<EnrolRequest>(&bytes)?.into_input()?;
            let device = app.devices.enrol(caller, input).await?;
            Ok(Reply::json(
                StatusCode::CREATED,
                json(&EnrolResponse::from(&device))?,
            ))
        }
        Route::ListDevices => {
            let owner = owner_from_query(parts.uri.query())?;
            let devices = app.devices.list(caller, &owner).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&DeviceListResponse::from(devices.as_slice()))?,
            ))
        }
        Route::Device(id) => {
            let id = LoggableText::parse(id)?;
            let device = app.devices.get(caller, &id).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&DeviceResponse::from(&device))?,
            ))
        }
        Route::RevokeDevice(id) => {
            let id = LoggableText::parse(id)?;
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let request = decode::<RevokeRequest>(&bytes)?;
            let device = app.devices.revoke(caller, &id, &request.reason).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&DeviceResponse::from(&device))?,
            ))
        }
        Route::AuthorizationChallenge => {
            require_json(&parts.headers)?;
            let key = idempotency_key(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let input = decode::<PaymentChallengeRequest>(&bytes)?.into_input()?;
            let issued = app
                .authorizations
                .create_challenge(caller, input, key.as_ref())
                .await?;
            Ok(Reply::json(
                StatusCode::CREATED,
                json(&PaymentChallengeResponse::from(&issued))?,
            ))
        }
        Route::Authorize => {
            require_json(&parts.headers)?;
            let key = idempotency_key(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let input = decode::<AuthorizeRequest>(&bytes)?.into_input()?;
            let signed = app
                .authorizations
                .authorize(caller, input, key.as_ref())
                .await?;
            Ok(Reply::json(
                StatusCode::CREATED,
                json(&AuthorizeResponse::from(&signed))?,
            ))
        }
        Route::Authorization(id) => {
            let record = app.authorizations.get(caller, id).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&AuthorizationResponse::from(&record))?,
            ))
        }
        // Public key material: any client that passed mTLS may read it, no policy decision.
        Route::Jwks => Ok(Reply {
            cache_control: Some(JWKS_CACHE_CONTROL),
            ..Reply::json(StatusCode::OK, json(&app.signer.jwks())?)
        }),
        Route::AuditSth => {
            numeric_query(parts.uri.query(), [])?;
            let head = app.audit.tree_head(caller).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&TreeHeadResponse::from(&head))?,
            ))
        }
        Route::AuditProof => {
            let (seq, tree_size) = proof_query(parts.uri.query())?;
            let proof = app.audit.inclusion_proof(caller, seq, tree_size).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&InclusionProofResponse::from(&proof))?,
            ))
        }
        Route::AuditConsistency => {
            let (from, to) = consistency_query(parts.uri.query())?;
            let proof = app.audit.consistency_proof(caller, from, to).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&ConsistencyProofResponse::from(&proof))?,
            ))
        }
        // The audit key's public half: any client that passed mTLS may read it.
        Route::AuditJwks => Ok(Reply {
            cache_control: Some(JWKS_CACHE_CONTROL),
            ..Reply::json(StatusCode::OK, json(&app.audit.jwks())?)
        }),
        Route::Keys => Ok(Reply::json(
            StatusCode::OK,
            json(&app.keys.list(caller).await?)?,
        )),
        Route::KeyChange => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let change = decode::<KeyChangeRequest>(&bytes)?.into_change()?;
            let outcome = app.keys.approve(caller, change).await?;
            let status = match outcome {
                ChangeOutcome::Pending { .. } => StatusCode::ACCEPTED,
                ChangeOutcome::Applied { .. } => StatusCode::OK,
            };
            Ok(Reply::json(
                status,
                json(&KeyChangeResponse::from(&outcome))?,
            ))
        }
        Route::Rewrap => {
            require_json(&parts.headers)?;
            let bytes =
                read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
            let batch = decode::<RewrapRequest>(&bytes)?.batch()?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&app.keys.rewrap(caller, batch).await?)?,
            ))
        }
        Route::Audit => {
            let (after, limit) = audit_query(parts.uri.query())?;
            let page = app.audit.read(caller, after, limit).await?;
            Ok(Reply::json(
                StatusCode::OK,
                json(&AuditPageResponse::from(&page))?,
            ))
        }
        Route::AuditReport => {
            let period = report_query(parts.uri.query())?;
            let signed = app.audit.report(caller, period, &app.keys).await?;
            Ok(Reply::json(StatusCode::OK, json(&signed)?))
        }
        // The contract, as in the repository: any client that passed mTLS may read it.
        Route::OpenApi => Ok(Reply::json(
            StatusCode::OK,
            SecretBuf::copy_from(OPENAPI.as_bytes()),
        )),
        Route::Healthz => Ok(Reply::json(
            StatusCode::OK,
            SecretBuf::copy_from(br#"{"status":"ok"}"#),
        )),
        Route::Readyz => readiness(app).await,
        Route::Metrics => app
            .metrics_access
            .check(caller)
            .await
            .map(|()| Reply {
                status: StatusCode::OK,
                content_type: PROMETHEUS_TEXT,
                cache_control: None,
                body: SecretBuf::copy_from(app.metrics.render().as_bytes()),
            })
            .map_err(ApiError::from),
    }
}

/// Logs each batch item that failed for a server fault, with its cause, as a whole request's
/// 5xx is logged: the batch itself answers 200.
fn log_failed_items<T>(request: &Incoming<'_>, results: &[Result<T, crate::service::Error>]) {
    for (index, e) in failed_items(results) {
        tracing::error!(
            request_id = %request.caller.request_id,
            route = request.label,
            index,
            code = e.code(),
            cause = %Chain(e),
            "batch item failed"
        );
    }
}

/// The domain of a suspend, resume or delete: the `domain` query parameter, else a JSON body
/// `{"domain": ".."}`.
async fn lifecycle_domain<B>(app: &App, parts: &Parts, body: B) -> Result<Domain, ApiError>
where
    B: Body,
    B::Error: Display,
{
    if let Some(domain) = domain_from_query(parts.uri.query())? {
        return Ok(Domain::parse(domain)?);
    }
    let bytes = read_body(&parts.headers, body, app.max_body_bytes, app.body_timeout).await?;
    if bytes.is_empty() {
        return Err(ApiError::Malformed(
            "the domain is required, as a `domain` query parameter or a JSON body",
        ));
    }
    require_json(&parts.headers)?;
    Ok(Domain::parse(&decode::<DomainBody>(&bytes)?.domain)?)
}

/// `/readyz`: 200 when the HSM and the store answer, else 503; the body names each check.
/// The key ring is loaded before the server starts, so `keys` is always `ok` here.
async fn readiness(app: &App) -> Result<Reply, ApiError> {
    let hsm = async {
        let started = Instant::now();
        let r = tokio::time::timeout(READY_CHECK_TIMEOUT, app.hsm.ping()).await;
        app.metrics.record_hsm("ping", started.elapsed());
        match r {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(error = %Chain(&e), "readiness: HSM ping failed");
                "hsm_unavailable"
            }
            Err(_) => {
                tracing::warn!("readiness: HSM ping timed out");
                "hsm_timeout"
            }
        }
    };
    let store = async {
        match tokio::time::timeout(READY_CHECK_TIMEOUT, app.vault.store().ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::fault::Chain(&e), "readiness: store ping failed");
                "store_unavailable"
            }
            Err(_) => {
                tracing::warn!("readiness: store ping timed out");
                "store_timeout"
            }
        }
    };
    let (hsm, store) = tokio::join!(hsm, store);
    let ready = hsm == "ok" && store == "ok";
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "hsm": hsm, "store": store, "keys": "ok" },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(Reply::json(status, json(&body)?))
}

/// Builds the response with `content-type` and `x-request-id`.
fn respond(reply: Reply, request_id: &str) -> Response<Full<SecretBuf>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Some(cache) = reply.cache_control {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    // Request ids are checked or generated as [A-Za-z0-9_-], always a valid header value.
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// The JSON error response for `e`.
pub fn error_response(e: &ApiError, request_id: &str) -> Response<Full<SecretBuf>> {
    let (status, code) = e.status_and_code();
    let message = e.to_string();
    let body = json(&ErrorResponse {
        error: ErrorDetail {
            code,
            message: &message,
            request_id,
        },
    })
    .unwrap_or_else(|_| {
        SecretBuf::copy_from(br#"{"error":{"code":"internal_error","message":"internal error"}}"#)
    });
    let mut response = respond(Reply::json(status, body), request_id);
    // Also where no body can be (a HEAD request, RFC 9110 §9.3.2).
    response
        .headers_mut()
        .insert("x-error-code", HeaderValue::from_static(code));
    if let ApiError::MethodNotAllowed { allow } = e {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use http_body_util::BodyExt;

    fn route(method: Method, path: &str) -> (&'static str, Result<&'static str, &'static str>) {
        let (label, r) = resolve(&method, path);
        let r = r
            .map(|r| match r {
                Route::Tokenize => "tokenize",
                Route::Detokenize => "detokenize",
                Route::TokenizeBatch => "tokenize_batch",
                Route::DetokenizeBatch => "detokenize_batch",
                Route::Metadata(_) => "metadata",
                Route::Change(_, c) => c.as_str(),
                Route::DeviceChallenge => "device_challenge",
                Route::EnrolDevice => "enrol_device",
                Route::ListDevices => "list_devices",
                Route::Device(_) => "device",
                Route::RevokeDevice(_) => "revoke_device",
                Route::AuthorizationChallenge => "authorization_challenge",
                Route::Authorize => "authorize",
                Route::Authorization(_) => "authorization",
                Route::Jwks => "jwks",
                Route::Keys => "keys",
                Route::KeyChange => "key_change",
                Route::Rewrap => "rewrap",
                Route::Audit => "audit",
                Route::AuditJwks => "audit_jwks",
                Route::AuditSth => "audit_sth",
                Route::AuditProof => "audit_proof",
                Route::AuditConsistency => "audit_consistency",
                Route::AuditReport => "audit_report",
                Route::OpenApi => "openapi",
                Route::Healthz => "healthz",
                Route::Readyz => "readyz",
                Route::Metrics => "metrics",
            })
            .map_err(|e| e.code());
        (label, r)
    }

    /// docs/api.md's table of codes is the OpenAPI document's `x-error-codes`, row for row;
    /// and each row's status is one some operation declares (but 405, answered to a method
    /// no operation has).
    #[test]
    fn the_codes_table_of_docs_api_md_is_the_openapi_documents() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let in_doc: Vec<(u64, String, String)> = doc["x-error-codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["status"].as_u64().unwrap(),
                    r["code"].as_str().unwrap().to_owned(),
                    r["when"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let in_md: Vec<(u64, String, String)> = include_str!("../../docs/api.md")
            .lines()
            .filter_map(|line| {
                let row = line.strip_prefix("| ")?.strip_suffix(" |")?;
                let mut cells = row.splitn(3, " | ");
                let status = cells.next()?.parse().ok()?;
                let code = cells.next()?.trim_matches('`').to_owned();
                Some((status, code, cells.next()?.to_owned()))
            })
            .collect();
        assert!(in_md.len() > 50, "the table was not found: {}", in_md.len());
        for (i, (md, doc)) in in_md.iter().zip(&in_doc).enumerate() {
            assert_eq!(md, doc, "row {i}");
        }
        assert_eq!(in_md.len(), in_doc.len());
        let declared: std::collections::BTreeSet<u64> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op.get("responses")?.as_object())
            .flat_map(|responses| responses.keys().filter_map(|k| k.parse().ok()))
            .collect();
        for (status, code, _) in &in_doc {
            assert!(
                declared.contains(status) || *status == 405,
                "{status} {code}: no operation declares {status}"
            );
        }
    }

    /// Every route of the router is an operation of the OpenAPI document and the other way
    /// round: each (method, path) of the document resolves to a route (a path template's
    /// parameter filled in), and together they reach every route there is.
    #[test]
    fn the_openapi_document_and_the_router_have_the_same_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut reached = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path
                .replace("{token}", "4111119876541111")
                .replace("{authorization_id}", "8f1c2d")
                .replace("{device_id}", "AbC-_9");
            for method in item.as_object().unwrap().keys() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (label, r) = route(m, &concrete);
                let name = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                assert!(crate::telemetry::ROUTES.contains(&label), "{label}");
                reached.insert(name);
            }
        }
        // Every route there is: the metrics' route labels, which must name each route (a
        // route missing there would be counted as another), and which `route` gives the
        // variants of `Route` as their names (its match is exhaustive).
        let all: std::collections::BTreeSet<&str> = crate::telemetry::ROUTES
            .iter()
            .copied()
            .filter(|r| *r != "unmatched")
            .collect();
        assert_eq!(reached, all);
    }

    #[test]
    fn routes_resolve_by_method_and_path() {
        assert_eq!(route(Method::GET, "/v1/audit"), ("audit", Ok("audit")));
        assert_eq!(
            route(Method::GET, "/v1/audit/jwks"),
            ("audit_jwks", Ok("audit_jwks"))
        );
        for (path, label) in [
            ("/v1/audit/sth", "audit_sth"),
            ("/v1/audit/proof", "audit_proof"),
            ("/v1/audit/consistency", "audit_consistency"),
        ] {
            assert_eq!(route(Method::GET, path), (label, Ok(label)));
            assert_eq!(
                route(Method::POST, path),
                (label, Err("method_not_allowed"))
            );
        }
        assert_eq!(
            route(Method::POST, "/v1/audit"),
            ("audit", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::GET, "/v1/audit/report"),
            ("audit_report", Ok("audit_report"))
        );
        assert_eq!(
            route(Method::POST, "/v1/audit/report"),
            ("audit_report", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens"),
            ("tokenize", Ok("tokenize"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens/detokenize"),
            ("detokenize", Ok("detokenize"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens/batch"),
            ("tokenize_batch", Ok("tokenize_batch"))
        );
        assert_eq!(
            route(Method::GET, "/v1/tokens/batch"),
            ("tokenize_batch", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens/detokenize/batch"),
            ("detokenize_batch", Ok("detokenize_batch"))
        );
        assert_eq!(
            route(Method::GET, "/v1/tokens/detokenize/batch"),
            ("detokenize_batch", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::GET, "/v1/tokens/4111119876541111"),
            ("metadata", Ok("metadata"))
        );
        assert_eq!(
            route(Method::DELETE, "/v1/tokens/4111119876541111"),
            ("delete", Ok("delete"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens/4111119876541111/suspend"),
            ("suspend", Ok("suspend"))
        );
        assert_eq!(
            route(Method::POST, "/v1/tokens/4111119876541111/resume"),
            ("resume", Ok("resume"))
        );
        assert_eq!(
            route(Method::POST, "/v1/devices/challenges"),
            ("device_challenge", Ok("device_challenge"))
        );
        assert_eq!(
            route(Method::POST, "/v1/devices"),
            ("enrol_device", Ok("enrol_device"))
        );
        assert_eq!(
            route(Method::GET, "/v1/devices"),
            ("list_devices", Ok("list_devices"))
        );
        assert_eq!(
            route(Method::DELETE, "/v1/devices"),
            ("enrol_device", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::GET, "/v1/devices/AbC-_9"),
            ("device", Ok("device"))
        );
        assert_eq!(
            route(Method::POST, "/v1/devices/AbC-_9"),
            ("device", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::POST, "/v1/devices/AbC-_9/revoke"),
            ("revoke_device", Ok("revoke_device"))
        );
        assert_eq!(
            route(Method::GET, "/v1/devices/AbC-_9/revoke"),
            ("revoke_device", Err("method_not_allowed"))
        );
        for path in [
            "/v1/devices/",
            "/v1/devices//revoke",
            "/v1/devices/a/b",
            "/v1/devices/a/revoke/x",
        ] {
            assert_eq!(
                route(Method::GET, path),
                ("unmatched", Err("not_found")),
                "{path}"
            );
        }
        assert_eq!(
            route(Method::POST, "/v1/authorizations/challenges"),
            ("authorization_challenge", Ok("authorization_challenge"))
        );
        assert_eq!(
            route(Method::POST, "/v1/authorizations"),
            ("authorize", Ok("authorize"))
        );
        assert_eq!(
            route(Method::GET, "/v1/authorizations"),
            ("authorize", Err("method_not_allowed"))
        );
        assert_eq!(
            route(
                Method::GET,
                "/v1/authorizations/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
            ),
            ("authorization", Ok("authorization"))
        );
        assert_eq!(
            route(Method::POST, "/v1/authorizations/some-id"),
            ("authorization", Err("method_not_allowed"))
        );
        for unmatched in ["/v1/authorizations/", "/v1/authorizations/a/b"] {
            assert_eq!(
                route(Method::GET, unmatched),
                ("unmatched", Err("not_found")),
                "{unmatched}"
            );
        }
        assert_eq!(route(Method::GET, "/v1/keys/jwks"), ("jwks", Ok("jwks")));
        assert_eq!(
            route(Method::POST, "/v1/keys/jwks"),
            ("jwks", Err("method_not_allowed"))
        );
        assert_eq!(route(Method::GET, "/v1/keys"), ("keys", Ok("keys")));
        assert_eq!(
            route(Method::POST, "/v1/keys/changes"),
            ("key_change", Ok("key_change"))
        );
        assert_eq!(
            route(Method::GET, "/v1/keys/changes"),
            ("key_change", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::POST, "/v1/keys/rewrap"),
            ("rewrap", Ok("rewrap"))
        );
        assert_eq!(route(Method::GET, "/healthz"), ("healthz", Ok("healthz")));
        assert_eq!(route(Method::GET, "/readyz"), ("readyz", Ok("readyz")));
        assert_eq!(route(Method::GET, "/metrics"), ("metrics", Ok("metrics")));
    }

    #[test]
    fn unknown_paths_are_not_found_and_wrong_methods_not_allowed() {
        for path in [
            "/",
            "/v1",
            "/v1/tokens/",
            "/v1/tokens/1/2/3",
            "/v1/tokens/1/freeze",
            "/v2/tokens",
        ] {
            assert_eq!(
                route(Method::GET, path),
                ("unmatched", Err("not_found")),
                "{path}"
            );
        }
        assert_eq!(
            route(Method::GET, "/v1/tokens"),
            ("tokenize", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::GET, "/v1/tokens/detokenize"),
            ("detokenize", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::PUT, "/v1/tokens/4111119876541111"),
            ("metadata", Err("method_not_allowed"))
        );
        assert_eq!(
            route(Method::POST, "/healthz"),
            ("healthz", Err("method_not_allowed"))
        );
    }

    #[test]
    fn fuzz_entry_point_survives_odd_paths() {
        for path in [
            "",
            "/v1/tokens/",
            "/v1/tokens//suspend",
            "/v1/tokens/a/b/c",
            "/v1/tokens/4111\u{0}/resume",
            "//v1/tokens/x",
        ] {
            for method in 0u8..6 {
                let mut data = vec![method];
                data.extend_from_slice(path.as_bytes());
                fuzz_resolve(&data);
            }
        }
        fuzz_resolve(&[]);
        fuzz_resolve(&[1, 0xff, 0xfe]);
    }

    async fn body_of(r: Response<Full<SecretBuf>>) -> serde_json::Value {
        let mut buf = r.into_body().collect().await.unwrap().aggregate();
        let bytes = buf.copy_to_bytes(buf.remaining());
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_responses_have_the_stable_shape_and_headers() {
        let r = error_response(&ApiError::MethodNotAllowed { allow: "POST" }, "req-1");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()["x-request-id"], "req-1");
        assert_eq!(r.headers()[ALLOW], "POST");
        let v = body_of(r).await;
        assert_eq!(v["error"]["code"], "method_not_allowed");
        assert!(v["error"]["message"].as_str().unwrap().contains("POST"));
        assert_eq!(v["error"]["request_id"], "req-1");
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["error"].as_object().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn detokenize_response_carries_digits_and_null_expiry() {
        let pan = crate::card::Pan::parse("4111111111111111").unwrap();
        let digits = std::str::from_utf8(pan.expose_digits()).unwrap();
        let receipt = crate::audit::Receipt {
            seq: 3,
            record_hash: "cd".repeat(32),
        };
        let buf = json(&DetokenizeResponse {
            pan: digits,
            exp_month: None,
            exp_year: None,
            receipt: &receipt,
        })
        .unwrap();
        let r = respond(Reply::json(StatusCode::OK, buf), "x");
        let v = body_of(r).await;
        assert_eq!(
            v,
            serde_json::json!({"pan":"4111111111111111","exp_month":null,"exp_year":null,
                "receipt":{"seq":3,"record_hash":"cd".repeat(32)}})
        );
    }
}
