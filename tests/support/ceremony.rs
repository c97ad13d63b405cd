//! Helpers for the `payhsm ceremony` suites: the real CLI binary with stdin piped, extra file
//! descriptors (PINs) and a private token store of the module under test; components; the
//! secret scanner.

use payhsm::ceremony::{combine, kcv, Component};
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What a CLI run printed.
pub struct Run {
    /// The exit status.
    pub out: Output,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// The exit code.
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
}

/// Runs `payhsm` from the repository root with `stdin` piped in, `env` set and each
/// `(fd, text)` readable on file descriptor `fd` of the child (a socket pair holding `text`,
/// so no PIN touches the disk).
pub fn run_cli(args: &[&str], stdin: &str, env: &[(&str, &Path)], fds: &[(RawFd, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsm"));
    cmd.args(args)
        .current_dir(super::repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut keep = Vec::new();
    let mut map = Vec::new();
    for (target, text) in fds {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        tx.write_all(text.as_bytes()).unwrap();
        drop(tx);
        map.push((rx.as_raw_fd(), *target));
        keep.push(rx);
    }
    if !map.is_empty() {
        pass_fds(&mut cmd, map);
    }
    let mut child = cmd.spawn().unwrap();
    drop(keep);
    // A child that stops before reading its stdin closes the pipe: not an error here.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    Run {
        out,
        stdout,
        stderr,
    }
}

/// Makes each `(source, target)` descriptor of this process `target` in the child.
#[allow(unsafe_code)]
fn pass_fds(cmd: &mut Command, map: Vec<(RawFd, RawFd)>) {
    assert!(
        map.len() <= 8 && map.iter().all(|(_, t)| *t < 64),
        "{map:?}"
    );
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl and dup2,
    // which are async-signal-safe; it allocates nothing. Each source is first copied above
    // every target (F_DUPFD_CLOEXEC from 64) so that no dup2 overwrites a source still to be
    // moved; dup2 clears FD_CLOEXEC on the target, and the copies close at exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0 as RawFd; 8];
            for ((source, _), slot) in map.iter().zip(high.iter_mut()) {
                let fd = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 64);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *slot = fd;
            }
            for ((_, target), fd) in map.iter().zip(high.iter()) {
                if libc::dup2(*fd, *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A private token store of the PKCS#11 module under test (a fresh one per test) for the
/// CLI's real tokens: SoftHSM2's token folder, or kryoptic's SQLite files, with a free slot
/// (`softhsm::write_store_config`).
pub struct TokenStore {
    /// The folder holding the store and its configuration.
    pub dir: tempfile::TempDir,
    /// The variable the module reads its configuration from, and the file.
    var: &'static str,
    conf: PathBuf,
}

impl TokenStore {
    /// An empty token store.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (var, conf) = super::softhsm::write_store_config(dir.path());
        Self { dir, var, conf }
    }

    /// Runs `payhsm` against this store. `ceremony init --token-label` and `ceremony tokens`
    /// get `--module` with the module under test; the other commands find it in the data
    /// directory's binding.
    pub fn cli(&self, args: &[&str], stdin: &str, fds: &[(RawFd, &str)]) -> Run {
        let module = super::softhsm::module_path();
        let mut all = args.to_vec();
        if matches!(args, ["ceremony", "init" | "tokens", ..])
            && !args.contains(&"--dev")
            && !args.contains(&"--module")
        {
            all.extend_from_slice(&["--module", module.to_str().unwrap()]);
        }
        run_cli(&all, stdin, &[(self.var, &self.conf)], fds)
    }

    /// The store's slots as `payhsm ceremony tokens` lists them: (slot ID, initialized,
    /// label).
    pub fn tokens(&self) -> Vec<(String, bool, String)> {
        let r = self.cli(&["ceremony", "tokens"], "", &[]);
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        r.stdout
            .lines()
            .map(|line| {
                let (slot, rest) = line
                    .strip_prefix("slot ")
                    .and_then(|l| l.split_once(": "))
                    .unwrap_or_else(|| panic!("{line}"));
                let (state, rest) = rest.split_once(' ').unwrap();
                let label = rest
                    .strip_prefix("label=\"")
                    .and_then(|l| l.split_once('"'))
                    .unwrap_or_else(|| panic!("{line}"))
                    .0;
                (slot.to_owned(), state == "initialized", label.to_owned())
            })
            .collect()
    }
}

/// (grouped hex, KCV) per component, from `kek components new`.
pub fn new_components(count: u8) -> Vec<(String, String)> {
    let r = run_cli(
        &[
            "ceremony",
            "kek",
            "components",
            "new",
            "--count",
            &count.to_string(),
        ],
        "",
        &[],
        &[],
    );
    assert!(r.out.status.success(), "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), usize::from(count), "{}", r.stdout);
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let prefix = format!("component {} of {count}: ", i + 1);
            let rest = line.strip_prefix(&prefix).unwrap();
            let (hex, kcv_text) = rest.split_once("  KCV ").unwrap();
            assert_eq!(hex.len(), 16 * 4 + 15, "{hex}");
            assert_eq!(kcv_text.len(), 10);
            let c = Component::from_hex(hex).unwrap();
            assert_eq!(kcv::display(&c.kcv_cmac()), kcv_text);
            (hex.to_owned(), kcv_text.to_owned())
        })
        .collect()
}

/// What custodians type for `form` and `backup`: each component, then its KCV.
pub fn form_input(components: &[(String, String)]) -> String {
    components
        .iter()
        .map(|(hex, kcv)| format!("{hex}\n{kcv}\n"))
        .collect()
}

/// The combined key's KCV, computed in software.
pub fn software_kcv(components: &[(String, String)]) -> String {
    kcv::display(&combine(&parse(components)).unwrap().kcv_cmac())
}

/// The combined key (the KEK) as grouped upper-case hex, for the scanner.
pub fn key_hex(components: &[(String, String)]) -> String {
    let key = combine(&parse(components)).unwrap();
    let digits: Vec<String> = key
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    digits
        .chunks(2)
        .map(|c| c.concat())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse(components: &[(String, String)]) -> Vec<Component> {
    components
        .iter()
        .map(|(hex, _)| Component::from_hex(hex).unwrap())
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The needles a secret value (grouped hex) leaves: its hex digits (either case, grouped or
/// not, any 16-digit run) and its raw bytes (any 8-byte run).
pub fn needles(grouped_hex: &str) -> Vec<Vec<u8>> {
    let digits: String = grouped_hex.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes: Vec<u8> = (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut out = Vec::new();
    for chunk in digits.as_bytes().chunks(16).filter(|c| c.len() == 16) {
        out.push(chunk.to_ascii_uppercase());
        out.push(chunk.to_ascii_lowercase());
    }
    for group in grouped_hex.split(' ').collect::<Vec<_>>().windows(3) {
        out.push(group.join(" ").into_bytes());
    }
    for chunk in bytes.chunks(8).filter(|c| c.len() == 8) {
        out.push(chunk.to_vec());
    }
    out
}

/// The needles a text secret (a PIN) leaves: its bytes, and their hex in either case.
pub fn text_needles(secret: &str) -> Vec<Vec<u8>> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.as_bytes().to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

/// Where any needle occurs in any haystack: "(haystack name, needle)" per hit.
pub fn find_needles(haystacks: &[(String, Vec<u8>)], needles: &[Vec<u8>]) -> Vec<String> {
    let mut hits = Vec::new();
    for (name, hay) in haystacks {
        for needle in needles {
            if hay.windows(needle.len()).any(|w| w == needle.as_slice()) {
                hits.push(format!("{name}: {}", String::from_utf8_lossy(needle)));
            }
        }
    }
    hits
}

/// Every file under `dirs`, named and read as raw bytes.
pub fn read_files(dirs: &[&Path]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect()
}
