//! The start-up sequence.

use super::DaemonError;
use crate::api::App;
use crate::audit::{export_jsonl, AuditEvent, PolicyVerdict, GENESIS};
use crate::config::{defaults, Config, PinSource, SecretSource, StoreConfig};
use crate::fault::Fault;
use crate::keys::{DataKeyRing, DataKeyState, Hsm, HsmConfig, KeyVersion, Module, Pin, SharedRing};
use crate::policy::PolicyEngine;
use crate::service::{Authorizations, Devices, KeyAdmin, KeySettings, KeySync, Vault};
use crate::store::postgres::{PgTls, PostgresOptions};
use crate::store::sqlite::SqliteOptions;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::transport::{self, TlsFiles};
use crate::webauthn::attestation::TrustAnchors;
use base64::Engine as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes the dev instance's `softhsm2.conf` (and token folder) under `data_dir` if absent.
pub fn prepare_dev_dir(data_dir: &Path) -> Result<(), DaemonError> {
    let io =
        |e: std::io::Error| DaemonError::Io(Fault::caused_by(data_dir.display().to_string(), e));
    private_dir(data_dir).map_err(io)?;
    let tokens = data_dir.join("softhsm-tokens");
    private_dir(&tokens).map_err(io)?;
    let conf = data_dir.join("softhsm2.conf");
    if !conf.exists() {
        let abs = std::fs::canonicalize(&tokens).map_err(io)?;
        let text = format!(
            "# SoftHSM2 token store of a payhsm dev instance. DEV ONLY.\n\
             directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            abs.display()
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&conf).map_err(io)?, text.as_bytes())
            .map_err(io)?;
    }
    crate::isolation::owner_only(&conf, 0o600).map_err(io)?;
    Ok(())
}

/// Records in the dev data directory `data_dir` (prepared) that its token is in `module`
/// (`payhsmd dev --module`), so that later commands on it ([`Config::dev`]) load the same one.
/// The path is recorded absolute (a relative one would name another file from another
/// folder) and must be UTF-8 (it is read back as text). Refuses a module other than the one
/// recorded, or than SoftHSM2 for a directory that already holds a vault with no module
/// recorded (made before modules were recorded): its token would be another.
pub fn record_dev_module(data_dir: &Path, module: &Path) -> Result<(), DaemonError> {
    let module = std::path::absolute(module)
        .map_err(|e| DaemonError::Hsm(Fault::caused_by(module.display().to_string(), e)))?;
    if module.to_str().is_none() {
        return Err(DaemonError::Hsm(Fault::new(format!(
            "the PKCS#11 module path {} is not UTF-8",
            module.display()
        ))));
    }
    let recorded = crate::config::dev_module(data_dir);
    let file = data_dir.join(defaults::DEV_MODULE_FILE);
    let vault = data_dir.join("payhsm.db");
    if file.exists() || vault.exists() {
        if recorded == module {
            return Ok(());
        }
        return Err(DaemonError::Hsm(Fault::new(format!(
            "{} was made with the PKCS#11 module {}, not {}",
            data_dir.display(),
            recorded.display(),
            module.display()
        ))));
    }
    let io = |e: std::io::Error| DaemonError::Io(Fault::caused_by(file.display().to_string(), e));
    let mut text = module.as_os_str().as_encoded_bytes().to_vec();
    text.push(b'\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&file).map_err(io)?, &text).map_err(io)
}

/// Creates `dir` (and its missing parents) readable by its owner only, and takes group and
/// other permissions away from it if it already existed: the store and the token files in it
/// are nobody else's business.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    crate::isolation::owner_only(dir, 0o700)
}

/// Points `SOFTHSM2_CONF` at the configured file. Call before any thread starts: the
/// environment is process-wide and SoftHSM2 reads it when the module initializes.
pub fn use_softhsm2_conf(config: &Config) {
    if let Some(conf) = &config.pkcs11.softhsm2_conf {
        std::env::set_var("SOFTHSM2_CONF", conf);
    }
}

/// The configuration of the dev data directory `data_dir` for a command that opens it
/// without serving (`payhsm ceremony`, `audit export|report --data-dir`): no listener, the
/// sample folders, and `SOFTHSM2_CONF` set ([`use_softhsm2_conf`]). Call before any thread
/// starts.
pub fn dev_tool_config(data_dir: &Path) -> Config {
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = Config::dev(
        data_dir,
        unused,
        Path::new("keys-sample"),
        Path::new("policies"),
    );
    use_softhsm2_conf(&config);
    config
}

/// The user PIN from its configured source.
pub(crate) fn read_pin(source: &PinSource) -> Result<Pin, DaemonError> {
    match source {
        PinSource::Env(var) => std::env::var(var).map(Pin::new).map_err(|_| {
            DaemonError::Hsm(Fault::new(format!("the PIN variable {var} is not set")))
        }),
        PinSource::File(path) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                DaemonError::Hsm(Fault::caused_by(
                    format!("cannot read the PIN file {}", path.display()),
                    e,
                ))
            })?);
            let line = text.lines().next().unwrap_or_default();
            Ok(Pin::new(line.to_owned()))
        }
        PinSource::DangerDevPin => Ok(Pin::new(defaults::DANGER_DEV_USER_PIN.to_owned())),
    }
}

/// Reads a secret named by the config (the database password): an environment variable, or
/// the first line of a file.
fn read_secret(source: &SecretSource) -> Result<zeroize::Zeroizing<String>, DaemonError> {
    match source {
        SecretSource::Env(var) => std::env::var(var)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                DaemonError::Store(Fault::new(format!(
                    "the password variable {var} is not set"
                )))
            }),
        SecretSource::File(path) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                DaemonError::Store(Fault::caused_by(
                    format!("cannot read the password file {}", path.display()),
                    e,
                ))
            })?);
            Ok(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or_default().to_owned(),
            ))
        }
    }
}

/// The HSM handle and the unwrapped data keys.
pub struct Keys {
    /// The HSM worker handle.
    pub hsm: Hsm,
    /// The data keys, unwrapped once.
    pub ring: DataKeyRing,
}

/// The daemon's own key event at start-up: no policy governs it, so the policy was not asked.
fn key_event(action: &str, outcome: String) -> AuditEvent {
    let mut event = AuditEvent::new(
        crate::clock::now_rfc3339(),
        "startup".to_owned(),
        "payhsmd".to_owned(),
        action.to_owned(),
        PolicyVerdict::NotAsked,
    );
    event.outcome = outcome;
    event
}

pub(super) async fn open_hsm(config: &Config, create_dev_token: bool) -> Result<Hsm, DaemonError> {
    let p = config.pkcs11.clone();
    let pin = read_pin(&p.pin)?;
    let hsm_err =
        |e: crate::keys::HsmError| DaemonError::Hsm(Fault::caused_by("cannot open the token", e));
    tokio::task::spawn_blocking(move || {
        let module = Module::load(&p.module).map_err(hsm_err)?;
        if create_dev_token {
            let so = Pin::new(defaults::DANGER_DEV_SO_PIN.to_owned());
            let user = Pin::new(defaults::DANGER_DEV_USER_PIN.to_owned());
            if module
                .init_token_if_absent(&p.token_label, &so, &user)
                .map_err(hsm_err)?
            {
                tracing::info!(token = %p.token_label, "created a dev token");
            }
        }
        Hsm::open(
            &module,
            HsmConfig {
                token_label: p.token_label.clone(),
                pin,
                sessions: p.sessions,
            },
        )
        .map_err(hsm_err)
    })
    .await
    .map_err(|e| DaemonError::Hsm(Fault::caused_by("the HSM start-up task failed", e)))?
}

/// Opens the HSM and the store and loads the data keys: in dev mode it first creates the
/// token, the KEK and the first data key where they are missing.
pub async fn open_keys(config: &Config, store: &dyn Store, dev: bool) -> Result<Keys, DaemonError> {
    let hsm = open_hsm(config, dev).await?;
    match load_keys(config, store, dev, &hsm).await {
        Ok(ring) => Ok(Keys { hsm, ring }),
        Err(e) => {
            // Stop the workers before the caller exits (see `Hsm::shutdown`).
            hsm.shutdown().await;
            Err(e)
        }
    }
}

async fn load_keys(
    config: &Config,
    store: &dyn Store,
    dev: bool,
    hsm: &Hsm,
) -> Result<DataKeyRing, DaemonError> {
    let hsm_err =
        |e: crate::keys::HsmError| DaemonError::Hsm(Fault::caused_by("cannot load the keys", e));
    let kek = &config.pkcs11.kek_label;
    if !hsm.kek_exists(kek).await.map_err(hsm_err)? {
        if !dev {
            return Err(DaemonError::Keys(Fault::new(format!(
                "no KEK labelled `{kek}` in token `{}`: form or generate it with the key ceremony",
                config.pkcs11.token_label
            ))));
        }
        hsm.generate_kek(kek).await.map_err(hsm_err)?;
        tracing::info!(label = %kek, "generated the dev KEK inside the token");
    }
    let store_err = |e: crate::store::StoreError| {
        DaemonError::Store(Fault::caused_by("cannot load the keys", e))
    };
    // Replicas share the vault only if they share the KEK: the first start records its check
    // value, and a daemon whose KEK differs refuses to start (before it could wrap or fail to
    // unwrap anything).
    let kcv = crate::ceremony::kcv::display(&hsm.kek_kcv(kek).await.map_err(hsm_err)?);
    let mut event = key_event("kek_recorded", "recorded".into());
    event.detail = Some(format!("KEK {kek} KCV {kcv}"));
    let recorded = store
        .pin_kek_kcv(kek, &kcv, event)
        .await
        .map_err(store_err)?;
    if let Some(recorded) = recorded.filter(|r| *r != kcv) {
        return Err(DaemonError::Keys(Fault::new(format!(
            "the KEK `{kek}` in this token has KCV {kcv}, but the vault's keys are wrapped by a \
             KEK with KCV {recorded}: every replica needs the same KEK (the same components)"
        ))));
    }
    hsm.ensure_signing_key(&config.pkcs11.audit_key_label)
        .await
        .map_err(hsm_err)?;
    let mut wrapped = store.data_keys().await.map_err(store_err)?;
    if wrapped.is_empty() {
        let (key, _material) = hsm
            .new_data_key(kek, KeyVersion(1))
            .await
            .map_err(hsm_err)?;
        let end = time::OffsetDateTime::now_utc().saturating_add(
            time::Duration::try_from(config.keys.data_key_cryptoperiod)
                .unwrap_or(time::Duration::MAX),
        );
        let outcome = store
            .activate_data_key(
                key.clone(),
                crate::clock::format_rfc3339(end),
                key_event("data_key_created", "created".into()),
            )
            .await
            .map_err(store_err)?;
        if outcome != crate::store::KeyChangeOutcome::Done {
            return Err(DaemonError::Keys(Fault::new(format!(
                "the first data key was not stored: {outcome:?}"
            ))));
        }
        wrapped = store.data_keys().await.map_err(store_err)?;
    }
    // Retired and destroyed versions are never loaded: no record may use them.
    wrapped.retain(|k| matches!(k.state, DataKeyState::Active | DataKeyState::DecryptOnly));
    let active = wrapped
        .iter()
        .filter(|k| k.state == DataKeyState::Active)
        .map(|k| k.version)
        .max()
        .ok_or_else(|| DaemonError::Keys(Fault::new("no active data key version")))?;
    let mut materials = Vec::with_capacity(wrapped.len());
    for key in &wrapped {
        materials.push((
            key.version,
            hsm.unwrap_data_key(key).await.map_err(hsm_err)?,
        ));
    }
    DataKeyRing::new(materials, active)
        .map_err(|e| DaemonError::Keys(Fault::caused_by("cannot build the data key ring", e)))
}

async fn open_store(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<dyn Store>, DaemonError> {
    let store_err = |e: crate::store::StoreError| {
        DaemonError::Store(Fault::caused_by("cannot open the store", e))
    };
    match &config.store {
        StoreConfig::Sqlite {
            path,
            token_cache_rows,
        } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                private_dir(dir).map_err(|e| {
                    DaemonError::Store(Fault::caused_by(dir.display().to_string(), e))
                })?;
            }
            let options = SqliteOptions {
                token_cache_rows: *token_cache_rows,
                ..SqliteOptions::default()
            };
            let store = crate::store::sqlite::open(path, options).map_err(store_err)?;
            Ok(Arc::new(store.with_observer(metrics)))
        }
        StoreConfig::Postgres(pg) => {
            let options = PostgresOptions {
                url: pg.url.clone(),
                password: pg.password.as_ref().map(read_secret).transpose()?,
                tls: match &pg.ca_file {
                    Some(ca_file) => PgTls::VerifyFull {
                        ca_file: ca_file.clone(),
                    },
                    None => PgTls::Disable,
                },
                pool_size: pg.pool_size,
                connect_timeout: pg.connect_timeout,
                statement_timeout: pg.statement_timeout,
                max_batch: pg.max_batch,
            };
            let store = crate::store::postgres::open(options)
                .await
                .map_err(store_err)?;
            Ok(Arc::new(store.with_observer(metrics)))
        }
    }
}

/// Starts the daemon and serves until `shutdown` completes, then drains. `dev` creates a
/// missing dev token, KEK and first data key. `on_listening` is told the bound address.
pub async fn run(
    config: Config,
    dev: bool,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), DaemonError> {
    // FIPS 140-3 §7.10.2: pre-operational self-tests before any cryptographic service.
    crate::keys::run_known_answer_tests()
        .map_err(|e| DaemonError::SelfTest(Fault::caused_by("known-answer tests", e)))?;
    let hardening = crate::isolation::harden_process();
    tracing::info!(?hardening, "process hardening applied");

    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config, metrics.clone()).await?;
    let Keys { hsm, ring } = open_keys(&config, store.as_ref(), dev).await?;
    let workers = hsm.clone();
    let result = serve(
        config,
        Parts {
            store,
            hsm,
            ring,
            metrics,
        },
        shutdown,
        on_listening,
    )
    .await;
    // After the drain or a start-up failure, before the process exits (see `Hsm::shutdown`).
    workers.shutdown().await;
    result
}

/// What start-up has opened by the time the HSM and the keys are ready.
struct Parts {
    store: Arc<dyn Store>,
    hsm: Hsm,
    ring: DataKeyRing,
    metrics: Arc<Metrics>,
}

async fn serve(
    config: Config,
    parts: Parts,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), DaemonError> {
    let Parts {
        store,
        hsm,
        ring,
        metrics,
    } = parts;
    let settings = KeySettings {
        kek_label: config.pkcs11.kek_label.clone(),
        audit_key_label: config.pkcs11.audit_key_label.clone(),
        authz_key_label: config.pkcs11.authz_key_label.clone(),
        lifecycle: config.keys.clone(),
    };
    // Design "Isolation and self-tests": the active signing key signs and verifies a probe;
    // a key that fails it stops the daemon before it serves.
    let signer = KeyAdmin::open_signer(store.as_ref(), &hsm, &settings)
        .await
        .map_err(|e| DaemonError::Keys(Fault::caused_by("authorization signing key", e)))?;
    let policy = Arc::new(PolicyEngine::load(&config.policy_dir).map_err(|e| {
        DaemonError::Policy(Fault::caused_by(config.policy_dir.display().to_string(), e))
    })?);
    let anchors = match &config.webauthn.anchors_dir {
        Some(dir) => super::anchors::load(dir)?,
        None => TrustAnchors::default(),
    };
    tracing::info!(
        anchors = anchors.anchors.len(),
        relying_parties = config.webauthn.relying_parties.len(),
        "WebAuthn configured"
    );
    let (metadata, mds_anchor) = super::mds::open(config.webauthn.mds.as_ref(), &metrics)?;
    let revocations = Arc::new(crate::service::AndroidRevocations::default());
    if let Some(path) = &config.webauthn.android_revocation_list {
        let n = super::mds::load_revocations(path, &revocations).map_err(DaemonError::Anchors)?;
        tracing::info!(entries = n, "Android revocation list in force");
    }
    super::mds::spawn_reloads(
        super::mds::Reloads {
            mds: config
                .webauthn
                .mds
                .clone()
                .zip(mds_anchor)
                .map(|(c, a)| (c, a, metadata.clone())),
            revocations: config
                .webauthn
                .android_revocation_list
                .clone()
                .map(|p| (p, revocations.clone())),
        },
        metrics.clone(),
    )?;
    let devices = Devices::new(
        store.clone(),
        policy.clone(),
        config.webauthn.clone(),
        anchors,
        metadata.clone(),
        revocations,
    );
    let ring = Arc::new(SharedRing::new(ring));
    let authorizations = Authorizations::new(
        store.clone(),
        policy.clone(),
        ring.clone(),
        config.webauthn.clone(),
        signer.clone(),
        metadata,
    );
    let keys = KeyAdmin::new(
        store.clone(),
        policy.clone(),
        hsm.clone(),
        ring.clone(),
        signer.clone(),
        settings,
    );
    let metrics_access = crate::service::MetricsAccess::new(store.clone(), policy.clone());
    let audit_public = hsm
        .ensure_signing_key(&config.pkcs11.audit_key_label)
        .await
        .map_err(|e| DaemonError::Hsm(Fault::caused_by("audit signing key", e)))?;
    let facts = crate::service::system_facts(
        "the serving daemon's configuration",
        config.token_format,
        transport::tls::tls_facts(Some(config.server.crls.len())),
    );
    let audit = crate::service::AuditReader::new(
        store.clone(),
        policy.clone(),
        hsm.clone(),
        (config.pkcs11.audit_key_label.clone(), &audit_public),
        facts,
    );
    let tree_heads = tokio::spawn(sign_tree_heads(audit.clone(), config.audit.clone()));
    let key_sync = Arc::new(KeySync::new(
        store.clone(),
        hsm.clone(),
        ring.clone(),
        signer.clone(),
    ));
    if matches!(config.store, StoreConfig::Postgres(_)) {
        // Other replicas change keys too: follow them (a request that meets a newer version
        // does not wait for this; it reloads at once).
        tokio::spawn(follow_key_changes(Arc::clone(&key_sync)));
    }
    let vault = Vault::new(store, ring, policy, config.token_format).with_key_sync(key_sync);
    let app = Arc::new(App {
        vault,
        devices,
        authorizations,
        keys,
        hsm,
        signer,
        metrics,
        metrics_access,
        audit,
        max_body_bytes: config.server.limits.max_body_bytes,
        max_batch_body_bytes: config.server.limits.max_batch_body_bytes,
        body_timeout: config.server.limits.body_timeout,
    });

    let tls = transport::server_tls(&TlsFiles {
        cert: config.server.cert.clone(),
        key: config.server.key.clone(),
        client_ca: config.server.client_ca.clone(),
        crls: config.server.crls.clone(),
    })
    .map_err(|e| DaemonError::Tls(Fault::caused_by("cannot load the server TLS files", e)))?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| {
            DaemonError::Io(Fault::caused_by(
                format!("cannot listen on {}", config.server.listen),
                e,
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| DaemonError::Io(Fault::caused_by("the listening address", e)))?;
    confine_syscalls(&config)?;
    tracing::info!(%addr, memory_locked = crate::isolation::memory_locked(), "payhsmd serving");
    on_listening(addr);
    let audit = app.audit.clone();
    let served = transport::run(listener, tls, app, config.server.limits.clone(), shutdown).await;
    // The last tree head covers every record written before the drain ended.
    tree_heads.abort();
    // Stopped at its next await: a head it was signing is finished or dropped, not racing
    // the last one.
    let _ = tree_heads.await;
    final_tree_head(&audit, &config.audit).await;
    served.map_err(|e| DaemonError::Io(Fault::caused_by("the server failed", e)))?;
    tracing::info!("payhsmd stopped");
    Ok(())
}

/// Exports the whole audit log as JSON lines ending with a checkpoint signed by the HSM audit
/// key (so truncation is detectable).
pub async fn export_audit(config: &Config) -> Result<String, DaemonError> {
    // Read-only: the daemon may be running, and it is the store's one writer.
    let StoreConfig::Sqlite { path, .. } = &config.store else {
        return Err(DaemonError::Store(Fault::new(
            "a PostgreSQL vault is exported over the API: payhsm audit export --url",
        )));
    };
    let store = crate::store::sqlite::open_read_only(path)
        .map_err(|e| DaemonError::Store(Fault::caused_by("cannot open the store", e)))?;
    let hsm = open_hsm(config, false).await?;
    let exported = export_with(&store, &hsm, &config.pkcs11.audit_key_label).await;
    // On every path, before the process exits (see `Hsm::shutdown`).
    hsm.shutdown().await;
    exported
}

/// Exports the audit log of `store` with a checkpoint signed by the key `label` of an opened
/// `hsm` (created there if absent): [`export_audit`] for a caller that opened both itself.
pub async fn export_with(store: &dyn Store, hsm: &Hsm, label: &str) -> Result<String, DaemonError> {
    let hsm_err =
        |e: crate::keys::HsmError| DaemonError::Hsm(Fault::caused_by("audit signing key", e));
    let public = hsm.ensure_signing_key(label).await.map_err(hsm_err)?;
    let records = crate::store::read_whole_audit_log(store)
        .await
        .map_err(|e| DaemonError::Store(Fault::caused_by("cannot read the audit log", e)))?;
    let head = records
        .last()
        .map_or_else(|| crate::audit::to_hex(&GENESIS), |r| r.hash.clone());
    let count = records.len() as u64;
    let public_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.0);
    let checkpoint = crate::service::signed_checkpoint(hsm, label, public_key, count, head)
        .await
        .map_err(hsm_err)?;
    Ok(export_jsonl(&records, &checkpoint))
}

/// The files the daemon reaches once confined: its store's folder and token store (read and
/// written), and every file its configuration names (read), plus `[isolation]`'s own.
pub fn file_access(config: &Config) -> crate::isolation::confine::FileAccess {
    let mut read_write = config.isolation.read_write.clone();
    let mut read_only = config.isolation.read_only.clone();
    if let StoreConfig::Sqlite { path, .. } = &config.store {
        // The database, its WAL and journal files live beside it.
        read_write.extend(path.parent().map(Path::to_path_buf));
    }
    // The configured file, else the one SoftHSM2 reads from the environment.
    let softhsm2_conf = (config.pkcs11.softhsm2_conf.clone())
        .or_else(|| std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from));
    if let Some(conf) = softhsm2_conf {
        read_write.extend(softhsm2_token_dir(&conf));
        read_only.push(conf);
    }
    read_only.push(config.pkcs11.module.clone());
    if let PinSource::File(p) = &config.pkcs11.pin {
        read_only.push(p.clone());
    }
    read_only.push(config.policy_dir.clone());
    let server = &config.server;
    read_only.extend([
        server.cert.clone(),
        server.key.clone(),
        server.client_ca.clone(),
    ]);
    read_only.extend(server.crls.iter().cloned());
    if let StoreConfig::Postgres(pg) = &config.store {
        read_only.extend(pg.ca_file.clone());
        if let Some(SecretSource::File(p)) = &pg.password {
            read_only.push(p.clone());
        }
    }
    let webauthn = &config.webauthn;
    read_only.extend(webauthn.anchors_dir.clone());
    // Files replaced while the daemon runs (written whole, then renamed over the old one) are
    // new inodes a rule on the old file would not cover: their folder is the rule.
    let folder = |p: &PathBuf| p.parent().map(Path::to_path_buf);
    read_only.extend(webauthn.android_revocation_list.as_ref().and_then(folder));
    if let Some(mds) = &webauthn.mds {
        read_only.extend(folder(&mds.blob));
        read_only.push(mds.anchor.clone());
    }
    crate::isolation::confine::FileAccess {
        read_write,
        read_only,
    }
}

/// `directories.tokendir` of a SoftHSM2 configuration file, if it names one.
fn softhsm2_token_dir(conf: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "directories.tokendir").then(|| PathBuf::from(value.trim()))
    })
}

/// Confines file access (Landlock) as `[isolation]` asks, before the runtime starts any
/// thread; logs what was enforced. An error when confinement was asked and failed.
pub fn confine_files(config: &Config) -> Result<(), DaemonError> {
    use crate::isolation::confine::{restrict_files, LandlockOutcome};
    if !config.isolation.enabled() {
        tracing::warn!("isolation disabled: file access and system calls are not confined");
        return Ok(());
    }
    let outcome = restrict_files(&file_access(config))
        .map_err(|e| DaemonError::Isolation(Fault::caused_by("file confinement", e)))?;
    match outcome {
        LandlockOutcome::Unsupported => tracing::warn!(
            "this kernel has no Landlock: file access is not confined (no_new_privs is set)"
        ),
        o => tracing::info!(landlock = o.as_str(), "file access confined"),
    }
    Ok(())
}

/// Installs the seccomp allow-list (after the keys are loaded and the listener is bound) and
/// probes the confinement from inside; logs the probes.
fn confine_syscalls(config: &Config) -> Result<(), DaemonError> {
    use crate::isolation::confine::{install_seccomp, probe};
    if !config.isolation.enabled() {
        return Ok(());
    }
    let installed = install_seccomp(config.isolation.seccomp)
        .map_err(|e| DaemonError::Isolation(Fault::caused_by("seccomp", e)))?;
    if !installed {
        tracing::warn!("no seccomp allow-list for this platform: system calls are not filtered");
    }
    let outside = match &config.store {
        StoreConfig::Sqlite { path, .. } => path
            .parent()
            .and_then(Path::parent)
            .map_or_else(std::env::temp_dir, Path::to_path_buf),
        StoreConfig::Postgres(_) => std::env::temp_dir(),
    };
    let probes = probe(&outside);
    tracing::info!(
        seccomp = installed,
        mode = ?config.isolation.seccomp,
        execve = %probes.execve,
        open_etc_shadow = %probes.shadow,
        write_outside_data = %probes.write_outside,
        user_namespace = %probes.user_namespace,
        other_socket = %probes.other_socket,
        thread = %probes.thread,
        "confined"
    );
    Ok(())
}

/// How often the tree-head loop looks at the log's size.
const TREE_HEAD_TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the tree head signed at shutdown may take.
const FINAL_TREE_HEAD_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Signs tree heads over the audit log as it grows, for as long as the daemon runs: once
/// `tree_head_every_records` records were added since the last head, or
/// `tree_head_interval` after it when any was.
async fn sign_tree_heads(audit: crate::service::AuditReader, config: crate::config::AuditConfig) {
    let mut tick = tokio::time::interval(TREE_HEAD_TICK.min(config.tree_head_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        tick.tick().await;
        let force = last.elapsed() >= config.tree_head_interval;
        match audit
            .sign_tree_head_if_due(config.tree_head_every_records, force)
            .await
        {
            Ok(signed) => {
                failing = false;
                if let Some(head) = signed {
                    last = tokio::time::Instant::now();
                    tracing::debug!(tree_size = head.tree_size, "audit tree head signed");
                } else if force {
                    last = tokio::time::Instant::now();
                }
            }
            // Once per outage, not every tick.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %crate::fault::Chain(&e), "cannot sign an audit tree head");
            }
            Err(_) => {}
        }
    }
}

/// The tree head signed at shutdown, over every record written (bounded in time).
async fn final_tree_head(audit: &crate::service::AuditReader, config: &crate::config::AuditConfig) {
    let signed = tokio::time::timeout(
        FINAL_TREE_HEAD_BOUND,
        audit.sign_tree_head_if_due(config.tree_head_every_records, true),
    )
    .await;
    match signed {
        Ok(Ok(Some(head))) => {
            tracing::info!(
                tree_size = head.tree_size,
                "audit tree head signed at shutdown"
            );
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(
            error = %crate::fault::Chain(&e),
            "cannot sign the audit tree head at shutdown"
        ),
        Err(_) => tracing::warn!("the audit tree head at shutdown took too long; not signed"),
    }
}

/// How often a replica on a shared store reloads the keys other replicas may have changed
/// (the JWKS and the sealing version follow within this).
const KEY_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reloads the keys every [`KEY_SYNC_INTERVAL`] for as long as the daemon runs.
async fn follow_key_changes(sync: Arc<KeySync>) {
    let mut tick = tokio::time::interval(KEY_SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match sync.sync().await {
            Ok(_) => failing = false,
            // Once per outage, not every second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %crate::fault::Chain(&e), "cannot reload the keys from the store");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test module
    use super::*;

    #[test]
    fn a_dev_directory_keeps_the_module_it_was_made_with() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepare_dev_dir(&data).unwrap();
        let softhsm2 = Path::new(defaults::PKCS11_MODULE);
        assert_eq!(crate::config::dev_module(&data), softhsm2);
        let other = Path::new("/opt/other/libpkcs11.so");
        record_dev_module(&data, other).unwrap();
        assert_eq!(crate::config::dev_module(&data), other);
        // Again with the same module: nothing changes.
        record_dev_module(&data, other).unwrap();
        assert!(matches!(
            record_dev_module(&data, softhsm2),
            Err(DaemonError::Hsm(_))
        ));
        // A relative path is recorded absolute.
        let fresh = dir.path().join("fresh");
        prepare_dev_dir(&fresh).unwrap();
        record_dev_module(&fresh, Path::new("lib/x.so")).unwrap();
        assert_eq!(
            crate::config::dev_module(&fresh),
            std::env::current_dir().unwrap().join("lib/x.so")
        );
        // A vault made before modules were recorded is SoftHSM2's: another module is refused.
        let old = dir.path().join("old");
        prepare_dev_dir(&old).unwrap();
        std::fs::write(old.join("payhsm.db"), b"").unwrap();
        assert!(matches!(
            record_dev_module(&old, other),
            Err(DaemonError::Hsm(_))
        ));
        record_dev_module(&old, softhsm2).unwrap();
        assert_eq!(
            Config::dev(
                &data,
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                Path::new("k"),
                Path::new("p")
            )
            .pkcs11
            .module,
            other
        );
    }
}
