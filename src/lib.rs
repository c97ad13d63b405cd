//! payhsm: an isolated payment security module.
//!
//! Gateways call the daemon over mutual TLS to turn card numbers into tokens and back; every
//! key lives behind PKCS#11 and every plaintext secret in memory is zeroized.
//!
//! # Layout
//! Data flows down this list; nothing calls up.
//! - [`transport`]: rustls mTLS listener, the caller's identity from its certificate, HTTP/1.1 and HTTP/2.
//! - [`api`]: API v1 request and response types, routing, the one error-to-HTTP mapping.
//! - [`service`]: the use cases (tokenize, detokenize, lifecycle, device enrolment, payment
//!   authorizations), one function each.
//! - [`text`]: caller text that is shown, signed, stored or logged: refused if it holds a card
//!   number or characters that hide or reorder what a reader sees, NFC-normalized: sans-io and
//!   pure.
//! - [`card`]: PANs, tokens and their formats, card numbers inside text: sans-io and pure.
//! - [`payment`]: amounts, ISO 4217 currencies, payees and SPC display data of payment
//!   authorizations: sans-io and pure.
//! - [`webauthn`]: WebAuthn L3 / SPC registration and assertion verification: sans-io and pure.
//! - [`policy`]: Cedar policies and the identity-to-group map: who may do what.
//! - [`ceremony`]: key components, KCVs and Shamir shares for key ceremonies: sans-io and pure.
//! - [`keys`]: the key hierarchy over PKCS#11: KEK in the HSM, data keys zeroized in locked RAM.
//! - [`store`]: the `Store` trait and its SQLite (embedded) and PostgreSQL (replicas)
//!   implementations, each with one group-committing writer.
//! - [`jose`]: compact JWS (ES256), JWKS and the HSM-backed authorization signer.
//! - [`audit`]: typed audit events, the hash chain, signed checkpoints, export and verification,
//!   the PCI DSS evidence report.
//!
//! Around them: [`config`] (typed TOML configuration), [`daemon`] (start-up of `payhsmd`),
//! [`cli`] (the `payhsm` command), [`client`] (an mTLS API client), [`bench`] (the load
//! generator of `payhsm bench`), [`pki`] (the dev PKI),
//! [`telemetry`] (logs and Prometheus metrics), [`fault`] (errors that keep their cause), [`fuzzing`] (the fuzz targets' entry points)
//! and [`isolation`] (process hardening, the one module allowed `unsafe`).

pub mod api;
pub mod audit;
pub mod bench;
pub mod card;
pub mod ceremony;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fault;
pub mod fuzzing;
pub mod isolation;
pub mod jose;
pub mod keys;
pub mod payment;
pub mod pki;
pub mod policy;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod transport;
pub mod webauthn;
