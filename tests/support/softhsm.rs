//! The PKCS#11 token for in-process tests of the keys layer: one temporary token store and
//! token per test process, set up once (the module reads its configuration variable at the
//! first PKCS#11 call, and the OnceLock orders every test after it).
//!
//! The module is SoftHSM2 unless `PAYHSM_TEST_PKCS11_MODULE` names another (CI runs the HSM
//! tests a second time with kryoptic, built by `scripts/kryoptic`; see docs/hsm.md).

use payhsm::keys::{Module, Pin};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Debian's SoftHSM2 module, the default.
pub const SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The variable naming another PKCS#11 module for the tests.
pub const MODULE_VAR: &str = "PAYHSM_TEST_PKCS11_MODULE";
/// The test token's label.
pub const TOKEN: &str = "payhsm-test";
/// The test token's user PIN (a test secret).
pub const USER_PIN: &str = "user-pin-1234";
/// The test token's SO PIN (a test secret).
pub const SO_PIN: &str = "so-pin-5678";

/// The PKCS#11 module under test: `PAYHSM_TEST_PKCS11_MODULE`, or SoftHSM2.
pub fn module_path() -> PathBuf {
    match std::env::var_os(MODULE_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(SOFTHSM2),
    }
}

/// The soft tokens the tests know how to give a private token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SoftHSM2: `SOFTHSM2_CONF` names a file naming a token folder.
    SoftHsm2,
    /// kryoptic: `KRYOPTIC_CONF` names a TOML file listing slots, each an SQLite file.
    Kryoptic,
}

/// Which soft token the module under test is, from its file name.
pub fn kind() -> Kind {
    let path = module_path();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("softhsm2") {
        Kind::SoftHsm2
    } else if name.contains("kryoptic") {
        Kind::Kryoptic
    } else {
        panic!(
            "{MODULE_VAR}={}: the tests know SoftHSM2 and kryoptic only",
            path.display()
        )
    }
}

/// Whether the module under test is SoftHSM2 (tests of SoftHSM2's own behaviour, such as its
/// token folder, run on it only).
pub fn is_softhsm2() -> bool {
    kind() == Kind::SoftHsm2
}

/// Writes a configuration giving the module under test a token store of its own in `dir`
/// (which must exist), with a free slot left after the first token is made. Returns the
/// variable the module reads it from and the file: set it before the module's first
/// C_Initialize.
pub fn write_store_config(dir: &Path) -> (&'static str, PathBuf) {
    match kind() {
        Kind::SoftHsm2 => {
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).unwrap();
            let conf = dir.join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .unwrap();
            ("SOFTHSM2_CONF", conf)
        }
        // Two slots: the token's, and a spare that stays uninitialized, as SoftHSM2 always
        // offers one (kryoptic has only the slots configured).
        Kind::Kryoptic => {
            let conf = dir.join("kryoptic.conf");
            let slot = |n: u32, file: &str| {
                format!(
                    "[[slots]]\nslot = {n}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                    dir.join(file).display()
                )
            };
            let text = slot(1, "kryoptic.sql") + &slot(2, "kryoptic-spare.sql");
            std::fs::write(&conf, text).unwrap();
            ("KRYOPTIC_CONF", conf)
        }
    }
}

/// The loaded module, and the folder holding the token for the life of the process.
pub struct Fixture {
    /// The PKCS#11 module, initialized once.
    pub module: Module,
    _dir: tempfile::TempDir,
}

/// The process's token, created on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (var, conf) = write_store_config(dir.path());
        std::env::set_var(var, &conf);
        let module = Module::load(&module_path()).unwrap();
        module
            .init_token_if_absent(
                TOKEN,
                &Pin::new(SO_PIN.to_owned()),
                &Pin::new(USER_PIN.to_owned()),
            )
            .unwrap();
        Fixture { module, _dir: dir }
    })
}

/// Held by every test of a process that changes the token or reads it with its own cryptoki
/// session. payhsm orders its own calls with its process-wide token lock, but raw sessions
/// (tests that plant or remove objects) bypass it, and SoftHSM2's file store fails with
/// CKR_GENERAL_ERROR when an object is created while another session writes the token (a
/// key generation failed so in CI, beside a test destroying objects).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
