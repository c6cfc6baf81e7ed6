//! Unmounts the mount point if the rmount process serving it dies.
//!
//! FUSE's own `auto_unmount` needs the kernel option `allow_other`, which
//! lets every local user reach the mount past rmount's own access check
//! (the kernel answers from its attribute cache without asking). So rmount
//! does the same job itself: a small `sh` child waits on a pipe whose
//! writing end only the serving process holds. A clean exit first writes
//! one line ("nothing to do"); a crash or `kill -9` closes the pipe without
//! it, and the child runs `fusermount3 -u -z` on the mount point.
//!
//! The child holds no other descriptor (the `/dev/fuse` one above all: it
//! would keep the dead mount's connection alive), and between fork and
//! exec it only calls async-signal-safe functions.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The serving process's end of the pipe. [`Watchdog::disarm`] on a clean
/// exit; dropped without it (a crash), the child unmounts.
pub struct Watchdog {
    pipe: Option<OwnedFd>,
}

impl Watchdog {
    /// Starts the child for `mountpoint`. Call while the process has one
    /// thread (fork copies only the caller).
    pub fn start(mountpoint: &Path) -> std::io::Result<Watchdog> {
        // `read` fails at end of input without a whole line: the serving
        // process is gone. The mount point is $0.
        let script = "IFS= read -r line <&3 || exec fusermount3 -u -z -q -- \"$0\"";
        let argv: Vec<CString> = ["sh", "-c", script]
            .iter()
            .map(|a| CString::new(*a))
            .chain([CString::new(mountpoint.as_os_str().as_bytes())])
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());

        let mut fds = [0; 2];
        // SAFETY: a two-element array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two fresh descriptors that we now own.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

        // SAFETY: fork; the child below only calls async-signal-safe
        // functions (dup2, syscall, close, setpgid, execv, _exit).
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            0 => unsafe { watch(read_end.as_raw_fd(), &argv_ptrs) },
            _ => {
                drop(read_end);
                Ok(Watchdog {
                    pipe: Some(write_end),
                })
            }
        }
    }

    /// A clean exit: tells the child there is nothing to unmount.
    pub fn disarm(mut self) {
        if let Some(pipe) = self.pipe.take() {
            // SAFETY: writes a live two-byte buffer to our descriptor.
            let _ = unsafe { libc::write(pipe.as_raw_fd(), b"x\n".as_ptr().cast(), 2) };
        }
    }
}

/// The child: keeps only the pipe (as descriptor 3) and becomes the `sh`
/// that waits on it.
///
/// # Safety
/// Runs between fork and exec: async-signal-safe calls only.
unsafe fn watch(pipe: libc::c_int, argv: &[*const libc::c_char]) -> ! {
    // dup2 clears close-on-exec on the copy (not when it is already 3:
    // then fcntl does); every other descriptor above 2 goes, the
    // /dev/fuse one included.
    let kept = if pipe == 3 {
        libc::fcntl(3, libc::F_SETFD, 0) == 0
    } else {
        libc::dup2(pipe, 3) == 3
    };
    if !kept {
        libc::_exit(127);
    }
    if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
        for fd in 4..65_536 {
            libc::close(fd);
        }
    }
    // Its own process group: a Ctrl-C meant for a foreground rmount must
    // not end the watchdog before it is needed.
    libc::setpgid(0, 0);
    libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr());
    libc::_exit(127)
}
