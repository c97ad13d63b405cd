//! A SoftHSM2 token for in-process tests of the keys layer: one temporary token directory and
//! token per test process, set up once (the SOFTHSM2_CONF variable must be set before the first
//! PKCS#11 call, and the OnceLock orders every test after it).

use payhsm::keys::{Module, Pin};
use std::path::Path;
use std::sync::OnceLock;

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The test token's label.
pub const TOKEN: &str = "payhsm-test";
/// The test token's user PIN (a test secret).
pub const USER_PIN: &str = "user-pin-1234";
/// The test token's SO PIN (a test secret).
pub const SO_PIN: &str = "so-pin-5678";

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
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let module = Module::load(Path::new(MODULE)).unwrap();
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
