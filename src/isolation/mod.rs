//! Process hardening and locked memory for secrets.
//!
//! This is the one module allowed `unsafe`: `mlock`, `munlock`, `madvise`, `setrlimit`,
//! `getrlimit`, `umask` and `prctl` are libc calls with no safe wrapper in our dependencies,
//! and [`LockedBox`] owns a page-aligned allocation by raw pointer. Every `unsafe` block states why it is sound.
#![allow(unsafe_code)]

pub mod confine;

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroize;

/// Set once any `mlock` failed; never cleared.
static MLOCK_FAILED: AtomicBool = AtomicBool::new(false);

/// False if any [`LockedBox`] could not lock its memory (for example `RLIMIT_MEMLOCK` too
/// low); the secret is still zeroized on drop, but it may have reached swap.
pub fn memory_locked() -> bool {
    !MLOCK_FAILED.load(Ordering::Relaxed)
}

/// A heap value in its own locked pages, zeroized on drop.
///
/// The allocation is page-aligned and a whole number of pages, so that `munlock` on drop never
/// unlocks pages another `LockedBox` still uses (`mlock` does not nest). On Linux the pages are
/// also excluded from core dumps. If locking fails the box still works and
/// [`memory_locked`] reports it.
///
/// Only the inline bytes of `T` are locked: use it for fixed-size secrets such as `[u8; 32]`.
/// To avoid a copy of the secret on the stack, build it zeroed and fill it through `DerefMut`.
pub struct LockedBox<T: Zeroize> {
    ptr: NonNull<T>,
    layout: Layout,
    locked: bool,
}

// SAFETY: LockedBox owns its `T` exclusively (like `Box<T>`), so sending it to another thread
// is sound when `T` is `Send`.
unsafe impl<T: Zeroize + Send> Send for LockedBox<T> {}
// SAFETY: shared access only hands out `&T`, so sharing is sound when `T` is `Sync`.
unsafe impl<T: Zeroize + Sync> Sync for LockedBox<T> {}

impl<T: Zeroize> LockedBox<T> {
    /// Moves `value` into freshly allocated locked pages.
    pub fn new(value: T) -> Self {
        let page = page_size();
        let size = std::mem::size_of::<T>().max(1);
        let rounded = size.div_ceil(page).saturating_mul(page);
        let align = page.max(std::mem::align_of::<T>());
        let Ok(layout) = Layout::from_size_align(rounded, align) else {
            // Only on overflow of a huge T: treat like an allocation failure (abort).
            std::alloc::handle_alloc_error(Layout::new::<T>())
        };
        // SAFETY: `layout` has a non-zero size (at least one page).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is valid for writes of `layout.size() >= size_of::<T>()` bytes and
        // aligned to at least `align_of::<T>()`; the memory is uninitialized as a `T`, so
        // `write` (no drop of the old value) is the right call.
        unsafe { ptr.as_ptr().write(value) };
        let locked = lock_pages(raw, layout.size());
        if !locked {
            MLOCK_FAILED.store(true, Ordering::Relaxed);
        }
        Self {
            ptr,
            layout,
            locked,
        }
    }

    /// Whether this box's pages are locked in RAM.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl<T: Zeroize + Default> Default for LockedBox<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Zeroize> std::ops::Deref for LockedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` points to a live, initialized `T` owned by `self` until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Zeroize> std::ops::DerefMut for LockedBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` guarantees exclusive access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Zeroize> std::fmt::Debug for LockedBox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockedBox(..)")
    }
}

impl<T: Zeroize> Drop for LockedBox<T> {
    fn drop(&mut self) {
        let raw = self.ptr.as_ptr();
        // SAFETY: `raw` points to a live `T` owned by `self`; nothing uses it after this drop.
        unsafe {
            (*raw).zeroize();
            std::ptr::drop_in_place(raw);
        }
        if self.locked {
            // SAFETY: the range is exactly the allocation we locked in `new`.
            unsafe { libc::munlock(raw.cast::<libc::c_void>(), self.layout.size()) };
        }
        // SAFETY: `raw` was returned by `alloc_zeroed(self.layout)` and is freed once.
        unsafe { std::alloc::dealloc(raw.cast::<u8>(), self.layout) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|p| *p > 0)
        .unwrap_or(4096)
}

/// Locks `len` bytes at `addr` in RAM and, on Linux, keeps them out of core dumps.
fn lock_pages(addr: *mut u8, len: usize) -> bool {
    // SAFETY: `addr..addr+len` is one live allocation we own; mlock does not access it.
    let locked = unsafe { libc::mlock(addr.cast::<libc::c_void>(), len) } == 0;
    #[cfg(target_os = "linux")]
    {
        // Best effort: harden_process also disables core dumps for the whole process.
        // SAFETY: `addr` is page-aligned and the range is one allocation we own; MADV_DONTDUMP
        // only changes dump behaviour, not the contents.
        let _ = unsafe { libc::madvise(addr.cast::<libc::c_void>(), len, libc::MADV_DONTDUMP) };
    }
    locked
}

/// Which hardening steps [`harden_process`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    /// `RLIMIT_CORE` set to 0: no core files.
    pub core_dumps_disabled: bool,
    /// `PR_SET_DUMPABLE` 0: no core dumps and no ptrace attach by other same-uid processes.
    pub not_dumpable: bool,
    /// `SIGXFSZ` ignored: a write past `RLIMIT_FSIZE` fails with `EFBIG` (the store answers
    /// 503 and recovers when the limit is raised) instead of killing the process.
    pub file_size_signal_ignored: bool,
    /// The file mode creation mask is `0o077`: every file and folder the daemon (SQLite,
    /// SoftHSM2) creates from here on is readable by its owner only.
    pub owner_only_files: bool,
    /// The open-file limit, raised to its hard limit: every connection, parked socket and
    /// store file is a descriptor, and running out stalls `accept` for everyone.
    pub open_files: Option<u64>,
}

/// Disables core dumps and marks the process non-dumpable (Linux), and ignores `SIGXFSZ`.
/// Call once, early at start. Failures are reported, not fatal: the caller decides whether to
/// refuse to serve.
pub fn harden_process() -> Hardening {
    let file_size_signal_ignored = ignore_file_size_signal();
    let owner_only_files = owner_only_files();
    let open_files = raise_open_files();
    #[cfg(target_os = "linux")]
    {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `zero` is a valid rlimit that outlives the call.
        let core_dumps_disabled = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } == 0;
        // SAFETY: PR_SET_DUMPABLE takes one integer argument; the rest are ignored.
        let not_dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == 0;
        Hardening {
            core_dumps_disabled,
            not_dumpable,
            file_size_signal_ignored,
            owner_only_files,
            open_files,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Hardening {
            core_dumps_disabled: false,
            not_dumpable: false,
            file_size_signal_ignored,
            owner_only_files,
            open_files,
        }
    }
}

/// Sets `path`'s mode to `mode` when it gives group or others anything, and only then (a
/// folder already private on a read-only file system is left as it is). Not on Unix: nothing.
pub fn owner_only(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Raises the soft limit on open files to the hard limit; the limit in force after.
fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Sets the process's file mode creation mask to `0o077`, so that no file the daemon or a
/// library in it creates (the store and its WAL, the HSM's token files) is readable by group
/// or others, whatever the caller's umask was.
fn owner_only_files() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: umask only replaces the process's mask; it cannot fail and touches no memory.
        unsafe { libc::umask(0o077) };
        true
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// POSIX: a write past the file size limit (`RLIMIT_FSIZE`) raises `SIGXFSZ`, whose default
/// action ends the process; ignored, the write fails with `EFBIG` instead. SQLite reports that
/// as SQLITE_FULL, the writer rolls the batch back and answers 503, exactly as on a full disk.
fn ignore_file_size_signal() -> bool {
    // SAFETY: SIG_IGN installs no handler code; `signal` has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) != libc::SIG_ERR }
}

/// Reads one line from standard input into `buf` without any intermediate buffer and, when
/// standard input is a terminal, without echo (termios `ECHO` off, restored afterwards).
///
/// For key components and share transcripts: bytes go straight from the `read(2)` on fd 0
/// into the caller's (zeroizing) buffer, one at a time, so no library buffer keeps a copy.
/// Returns the line's length without its `\n` (and a trailing `\r`); `Ok(None)` at end of
/// input before any byte; an error if the line does not fit in `buf`.
pub fn read_secret_line(buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    read_secret_line_from(0, buf)
}

/// [`read_secret_line`] from the open file descriptor `fd` (a PIN passed as `3<file` or
/// through a pipe), without echo when `fd` is a terminal. Reads one byte at a time, so the
/// bytes after the line stay in the descriptor for the next read (two PINs on one fd).
pub fn read_secret_line_from(fd: i32, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let _echo = EchoOff::new(fd);
    let mut len = 0usize;
    loop {
        let mut byte = 0u8;
        // SAFETY: `fd` is only read into one valid, writable byte; an fd that is not open
        // fails with EBADF.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast::<libc::c_void>(), 1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            if len == 0 {
                return Ok(None);
            }
            break;
        }
        if byte == b'\n' {
            break;
        }
        match buf.get_mut(len) {
            Some(slot) => *slot = byte,
            None => {
                byte.zeroize();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "input line too long",
                ));
            }
        }
        byte.zeroize();
        len += 1;
    }
    if len > 0 && buf.get(len - 1) == Some(&b'\r') {
        len -= 1;
    }
    Ok(Some(len))
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    is_terminal(0)
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty takes a descriptor and no pointer.
    unsafe { libc::isatty(fd) == 1 }
}

/// Whether `fd` is an open file descriptor of this process.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no argument and touches no memory; a closed fd fails with EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// Terminal echo switched off on `fd` for its lifetime (a no-op when `fd` is not a terminal).
struct EchoOff(Option<(i32, libc::termios)>);

impl EchoOff {
    fn new(fd: i32) -> Self {
        if !is_terminal(fd) {
            return Self(None);
        }
        // SAFETY: termios is plain data; all-zero is a valid value to be overwritten.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a terminal fd and a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Self(None);
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a terminal fd and a valid termios read by the call.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Self(None);
        }
        Self(Some((fd, saved)))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some((fd, saved)) = &self.0 {
            // SAFETY: the terminal fd and the valid termios saved by `new`.
            let _ = unsafe { libc::tcsetattr(*fd, libc::TCSANOW, saved) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_box_holds_and_mutates_its_value() {
        let mut b = LockedBox::new([0u8; 32]);
        b.copy_from_slice(&[7u8; 32]);
        assert_eq!(*b, [7u8; 32]);
        assert_eq!(b.layout.size() % page_size(), 0);
        assert_eq!(format!("{b:?}"), "LockedBox(..)");
    }

    #[test]
    fn locked_boxes_do_not_share_pages() {
        let a = LockedBox::new([1u8; 32]);
        let b = LockedBox::new([2u8; 32]);
        let pa = a.ptr.as_ptr() as usize / page_size();
        let pb = b.ptr.as_ptr() as usize / page_size();
        assert_ne!(pa, pb);
        drop(a);
        assert_eq!(*b, [2u8; 32]);
    }

    #[test]
    fn memory_locked_reflects_mlock_results() {
        let b = LockedBox::new([0u8; 32]);
        if !b.is_locked() {
            assert!(!memory_locked());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn harden_process_disables_core_dumps() {
        let h = harden_process();
        assert!(
            h.core_dumps_disabled && h.not_dumpable && h.file_size_signal_ignored,
            "{h:?}"
        );
        let mut limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: `limit` is a valid, writable rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
        assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
        // SAFETY: PR_GET_DUMPABLE takes no pointer arguments.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }

    #[test]
    fn a_secret_line_is_read_from_any_fd_one_line_at_a_time() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        tx.write_all(b"first\r\nsecond\n").unwrap();
        drop(tx);
        let mut buf = [0u8; 16];
        let fd = rx.as_raw_fd();
        assert!(fd_is_open(fd));
        assert_eq!(read_secret_line_from(fd, &mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"first");
        assert_eq!(read_secret_line_from(fd, &mut buf).unwrap(), Some(6));
        assert_eq!(&buf[..6], b"second");
        assert_eq!(read_secret_line_from(fd, &mut buf).unwrap(), None);
        let mut small = [0u8; 2];
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        tx.write_all(b"toolong\n").unwrap();
        assert!(read_secret_line_from(rx.as_raw_fd(), &mut small).is_err());
        drop(rx);
        assert!(!fd_is_open(-1));
    }

    #[test]
    fn locked_box_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LockedBox<[u8; 32]>>();
    }
}
