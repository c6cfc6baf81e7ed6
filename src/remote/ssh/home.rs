//! The local user's home directory (for `~/.ssh`), and paths in messages
//! shown relative to it, as ssh shows them.

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// A path for messages: the home directory shown as `~`.
pub(super) fn display_path(p: &Path) -> String {
    if let Some(home) = home_dir() {
        if let Ok(rest) = p.strip_prefix(&home) {
            if !home.as_os_str().is_empty() && home != Path::new("/") {
                return format!("~/{}", rest.display());
            }
        }
    }
    p.display().to_string()
}

/// The local user's home directory: HOME, else the passwd entry.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    // SAFETY: getpwuid_r writes into our buffer; pw_dir is read before the
    // buffer goes away.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pwd.pw_dir).to_bytes().to_vec();
        Some(PathBuf::from(OsString::from_vec(dir)))
    }
}
