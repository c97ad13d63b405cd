//! What custodians type: prompts on stderr; lines and PINs read with `read(2)` straight into
//! zeroizing buffers ([`crate::isolation::read_secret_line_from`]), without echo on a terminal.
//! No error message holds what was read.

use super::Stop;
use crate::keys::Pin;
use zeroize::Zeroizing;

/// Longest line read (a share transcript of a 32-byte key is about 110 bytes).
pub(super) const MAX_LINE: usize = 1024;

/// The shortest PIN payhsm accepts for a new token, whatever the token allows.
pub(super) const MIN_PIN_LEN: usize = 8;

/// Prompts on stderr: on the same line at a terminal, on its own line otherwise.
pub(super) fn prompt(text: &str) {
    if crate::isolation::stdin_is_terminal() {
        eprint!("{text}: ");
    } else {
        eprintln!("{text}:");
    }
}

/// Reads one line from stdin into a zeroizing buffer; `what` names it for errors.
pub(super) fn read_line(what: &str) -> Result<Zeroizing<String>, Stop> {
    read_line_from(0, what)
}

fn read_line_from(fd: i32, what: &str) -> Result<Zeroizing<String>, Stop> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_LINE]);
    let len = crate::isolation::read_secret_line_from(fd, &mut buf)
        .map_err(|e| Stop::error(format!("reading {what}: {e}")))?
        .ok_or_else(|| Stop::error(format!("reading {what}: end of input")))?;
    let bytes = buf.get(..len).unwrap_or_default();
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Stop::refused(format!(
            "{what} is not UTF-8 text; stopped before any change"
        ))
    })?;
    let mut line = Zeroizing::new(String::with_capacity(len));
    line.push_str(text);
    Ok(line)
}

/// Where one PIN comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct PinEntry {
    /// The PIN's name in prompts and errors, e.g. "SO PIN".
    pub what: &'static str,
    /// The option that names its file descriptor, e.g. "--so-pin-fd".
    pub flag: &'static str,
    /// The file descriptor given, if any; otherwise the terminal.
    pub fd: Option<i32>,
}

/// The PIN lengths (bytes) a new token accepts.
#[derive(Debug, Clone, Copy)]
pub(super) struct PinBounds {
    /// Shortest.
    pub min: usize,
    /// Longest.
    pub max: usize,
}

impl PinEntry {
    /// Reads an existing PIN: one line from the fd, or typed once at the terminal.
    pub(super) fn read(&self) -> Result<Pin, Stop> {
        let line = match self.fd {
            Some(fd) => self.read_fd(fd)?,
            None => self.typed("")?,
        };
        Ok(into_pin(line))
    }

    /// Reads a new PIN (one line from the fd, or typed twice at the terminal and compared)
    /// and refuses one outside `bounds`.
    pub(super) fn read_new(&self, bounds: PinBounds) -> Result<Pin, Stop> {
        let line = match self.fd {
            Some(fd) => self.read_fd(fd)?,
            None => {
                let first = self.typed(" for the new token")?;
                let again = self.typed(", again")?;
                if first.as_bytes() != again.as_bytes() {
                    return Err(Stop::refused(format!(
                        "the two {}s typed differ; nothing initialized",
                        self.what
                    )));
                }
                first
            }
        };
        // PKCS#11 3.0 §3.2 CK_TOKEN_INFO: ulMinPinLen / ulMaxPinLen bound the PIN in bytes.
        if line.len() < bounds.min {
            return Err(Stop::refused(format!(
                "the {} is too short: at least {} characters; nothing initialized",
                self.what, bounds.min
            )));
        }
        if line.len() > bounds.max {
            return Err(Stop::refused(format!(
                "the {} is too long: at most {} characters; nothing initialized",
                self.what, bounds.max
            )));
        }
        if line.chars().any(char::is_control) {
            return Err(Stop::refused(format!(
                "the {} holds a control character; nothing initialized",
                self.what
            )));
        }
        Ok(into_pin(line))
    }

    fn read_fd(&self, fd: i32) -> Result<Zeroizing<String>, Stop> {
        if !crate::isolation::fd_is_open(fd) {
            return Err(Stop::error(format!(
                "{} {fd}: file descriptor {fd} is not open (e.g. `{} {fd} {fd}<pin-file`)",
                self.flag, self.flag
            )));
        }
        read_line_from(fd, &format!("the {} from file descriptor {fd}", self.what))
    }

    /// At the terminal only: piped stdin carries components and shares, never a PIN by
    /// accident.
    fn typed(&self, suffix: &str) -> Result<Zeroizing<String>, Stop> {
        if !crate::isolation::stdin_is_terminal() {
            return Err(Stop::error(format!(
                "the {} is typed at a terminal or read from a file descriptor: stdin is not a \
                 terminal, so give {} FD (e.g. `{} 3 3<pin-file`)",
                self.what, self.flag, self.flag
            )));
        }
        eprint!("{}{suffix} (not echoed): ", self.what);
        read_line(&format!("the {}", self.what))
    }
}

/// Moves the line's text into a [`Pin`] without copying it.
fn into_pin(mut line: Zeroizing<String>) -> Pin {
    Pin::new(std::mem::take(&mut *line))
}
