//! Whether to trust the server's host key: the `StrictHostKeyChecking`
//! policy applied to what known_hosts says on a mount's first connection,
//! and the key that connection pins, the only one later connections
//! accept. Also the host key algorithms offered in the handshake, and how
//! keys are named in messages (type label, SHA256 fingerprint).
//!
//! It reads and appends known_hosts only through `known_hosts`, and
//! authenticates no one.

use std::sync::{Mutex, OnceLock};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use ssh2::Session;

use super::connect::display_addr;
use super::home::display_path;
use super::known_hosts::{
    append_known_host, check_known_hosts, known_hosts_line, read_known_hosts, HostKeyStatus,
};
use super::SshSettings;
use crate::remote::Error;

/// How to treat a host key that known_hosts does not vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse unknown and changed keys (the default).
    Yes,
    /// Record an unknown key; refuse a changed one.
    AcceptNew,
    /// Warn and go on.
    No,
}

/// The host key a mount accepted on its first connection. Every later
/// connection (reconnects included) accepts that key and no other, whatever
/// `StrictHostKeyChecking` says, and keeps the first connection's verdict on
/// whether a password may be sent. Safe to share between threads.
#[derive(Debug, Default)]
pub struct HostKeyPin(OnceLock<PinnedKey>);

#[derive(Debug)]
struct PinnedKey {
    blob: Vec<u8>,
    /// `ED25519 SHA256:...`, for messages.
    shown: String,
    passwords: PasswordUse,
}

/// Whether password and keyboard-interactive authentication may be used on
/// a connection, decided by the host key check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PasswordUse {
    Allowed,
    /// The host key does not match known_hosts and the connection goes on
    /// only because `StrictHostKeyChecking=no`: as ssh does, no password is
    /// sent to a server that may be a man in the middle.
    DisabledChangedKey,
}

/// Host key algorithms a known_hosts key type can be presented with.
fn algorithms_for_key_type(key_type: &str) -> Vec<&str> {
    match key_type {
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        other => vec![other],
    }
}

/// The host key algorithm preference: those matching `known_types` first,
/// then the other supported ones, both in libssh2's order. Certificate
/// algorithms are left out: libssh2 prefers them by default, and a host
/// certificate is neither a known_hosts key nor verified here.
pub(super) fn hostkey_preference(known_types: &[String], supported: &[&str]) -> String {
    let wanted: Vec<&str> = known_types
        .iter()
        .flat_map(|t| algorithms_for_key_type(t))
        .collect();
    let plain = supported.iter().copied().filter(|a| !a.contains("-cert-"));
    let (first, rest): (Vec<&str>, Vec<&str>) = plain.partition(|a| wanted.contains(a));
    first.into_iter().chain(rest).collect::<Vec<_>>().join(",")
}

/// The key type name inside a public key blob (its first SSH string).
pub(super) fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// OpenSSH's fingerprint: `SHA256:` and the unpadded base64 of SHA-256(blob).
fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// How ssh names a key type in messages (`ED25519`, `ECDSA`, `RSA`, …).
fn key_type_label(key_type: &str) -> String {
    match key_type {
        "ssh-ed25519" => "ED25519".into(),
        "ssh-rsa" => "RSA".into(),
        "ssh-dss" => "DSA".into(),
        "ssh-ed448" => "ED448".into(),
        "sk-ssh-ed25519@openssh.com" => "ED25519-SK".into(),
        t if t.starts_with("sk-ecdsa-") => "ECDSA-SK".into(),
        t if t.starts_with("ecdsa-") => "ECDSA".into(),
        t => t.to_ascii_uppercase(),
    }
}

/// Added to the warning when a changed key is let through.
const NO_PASSWORDS: &str = "; password and keyboard-interactive authentication are disabled to \
                            avoid man-in-the-middle attacks";

/// Serializes check-and-append of known_hosts between the connections of
/// this process, so accept-new records a key once.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

pub(super) fn verify_host_key(
    sess: &Session,
    s: &SshSettings,
    name: &str,
    pin: &HostKeyPin,
) -> Result<PasswordUse, Error> {
    let Some((blob, kind)) = sess.host_key() else {
        return Err(Error::Transport(format!(
            "{}: the server sent no host key",
            display_addr(&s.host, s.port)
        )));
    };
    let key_type = match blob_key_type(blob) {
        Some(t) => t.to_string(),
        None => format!("{kind:?}").to_ascii_lowercase(),
    };
    let fp = fingerprint(blob);
    let label = key_type_label(&key_type);
    tracing::debug!("host key for {name}: {label} {fp}");
    let shown = format!("{label} key {fp}");

    if let Some(pinned) = pin.0.get() {
        return check_pinned(pinned, name, blob, &shown);
    }
    let passwords = check_known_hosts_policy(s, name, blob, &key_type, &label, &fp)?;
    // Concurrent first connections: the first to get here pins its key,
    // and the others must have met the same one.
    let pinned = pin.0.get_or_init(|| PinnedKey {
        blob: blob.to_vec(),
        shown: shown.clone(),
        passwords,
    });
    check_pinned(pinned, name, blob, &shown)
}

/// A later connection: only the pinned key is accepted.
fn check_pinned(
    pinned: &PinnedKey,
    name: &str,
    blob: &[u8],
    shown: &str,
) -> Result<PasswordUse, Error> {
    if pinned.blob == blob {
        return Ok(pinned.passwords);
    }
    Err(Error::Setup(format!(
        "host key for {name} differs from the one this mount verified: the server now presents \
         {shown}, but the mount accepts only {}; not authenticating (someone could be \
         eavesdropping, or another server answers at this address); if the server's key really \
         changed, unmount and mount again",
        pinned.shown
    )))
}

/// The known_hosts check of a first connection under the configured
/// `StrictHostKeyChecking` policy.
fn check_known_hosts_policy(
    s: &SshSettings,
    name: &str,
    blob: &[u8],
    key_type: &str,
    label: &str,
    fp: &str,
) -> Result<PasswordUse, Error> {
    let _guard = crate::sync::lock(&KNOWN_HOSTS_LOCK);
    let known = read_known_hosts(s);
    let policy = s.host_key_policy;
    let user_file = display_path(&s.user_known_hosts);
    match check_known_hosts(&known, name, key_type, blob) {
        HostKeyStatus::Known => Ok(PasswordUse::Allowed),
        HostKeyStatus::Revoked(k) => Err(Error::Setup(format!(
            "host key for {name} ({label} key {fp}) is marked @revoked in {}; refusing to connect",
            k.location()
        ))),
        HostKeyStatus::Changed(k) => {
            let msg = format!(
                "host key for {name} has CHANGED: the server presents {label} key {fp}, which does \
                 not match {}; someone could be eavesdropping (man-in-the-middle attack), or the \
                 host key was replaced; if you trust the new key, remove the old entry \
                 (ssh-keygen -R '{name}') and connect again",
                k.location()
            );
            if policy == HostKeyPolicy::No {
                tracing::warn!("{msg}; continuing because StrictHostKeyChecking=no{NO_PASSWORDS}");
                Ok(PasswordUse::DisabledChangedKey)
            } else {
                Err(Error::Setup(msg))
            }
        }
        HostKeyStatus::OtherType(k) => {
            let msg = format!(
                "host key for {name} does not match known_hosts: the server presents {label} key \
                 {fp}, but {} records a {} key for this host and the server did not offer that \
                 type (possible man-in-the-middle attack); if the server's keys really changed, \
                 update {user_file}",
                k.location(),
                k.key_type
            );
            if policy == HostKeyPolicy::No {
                tracing::warn!("{msg}; continuing because StrictHostKeyChecking=no{NO_PASSWORDS}");
                Ok(PasswordUse::DisabledChangedKey)
            } else {
                Err(Error::Setup(msg))
            }
        }
        HostKeyStatus::Unknown => match policy {
            HostKeyPolicy::Yes => Err(Error::Setup(format!(
                "host key for {name} is unknown ({label} key {fp}); add it to {user_file} or use \
                 -o StrictHostKeyChecking=accept-new"
            ))),
            HostKeyPolicy::AcceptNew => {
                let line = known_hosts_line(name, key_type, blob);
                match append_known_host(&s.user_known_hosts, &line) {
                    Ok(()) => {
                        tracing::warn!("permanently added {name} ({label} key {fp}) to {user_file}")
                    }
                    Err(e) => tracing::warn!(
                        "accepted the new host key for {name} ({label} key {fp}) but cannot \
                         record it in {user_file}: {e}"
                    ),
                }
                Ok(PasswordUse::Allowed)
            }
            HostKeyPolicy::No => {
                tracing::warn!(
                    "host key for {name} is unknown ({label} key {fp}); continuing because \
                     StrictHostKeyChecking=no"
                );
                Ok(PasswordUse::Allowed)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::remote::ssh::test_keys::{blob, ED25519_FP, ED25519_PUB};

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(&blob(ED25519_PUB)), ED25519_FP);
        assert_eq!(blob_key_type(&blob(ED25519_PUB)), Some("ssh-ed25519"));
        assert_eq!(key_type_label("ssh-ed25519"), "ED25519");
        assert_eq!(key_type_label("ecdsa-sha2-nistp256"), "ECDSA");
    }

    #[test]
    fn only_the_pinned_key_is_accepted() {
        let other = blob("AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let pinned = PinnedKey {
            blob: blob(ED25519_PUB),
            shown: format!("ED25519 key {ED25519_FP}"),
            passwords: PasswordUse::DisabledChangedKey,
        };
        // The same key keeps the first connection's verdict on passwords.
        assert!(matches!(
            check_pinned(&pinned, "[h]:2222", &blob(ED25519_PUB), "x"),
            Ok(PasswordUse::DisabledChangedKey)
        ));
        let shown = format!("ED25519 key {}", fingerprint(&other));
        match check_pinned(&pinned, "[h]:2222", &other, &shown) {
            Err(Error::Setup(msg)) => {
                assert!(msg.contains(ED25519_FP), "{msg}");
                assert!(msg.contains(&fingerprint(&other)), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
            other => panic!("another key must be refused: {other:?}"),
        }
    }

    #[test]
    fn hostkey_preference_puts_known_types_first() {
        let supported = [
            "ssh-ed25519",
            "ssh-ed25519-cert-v01@openssh.com",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "rsa-sha2-256",
            "ssh-rsa",
        ];
        assert_eq!(
            hostkey_preference(&["ssh-rsa".into()], &supported),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp256"
        );
        assert_eq!(
            hostkey_preference(
                &["ecdsa-sha2-nistp256".into(), "sk-ssh-x".into()],
                &supported
            ),
            "ecdsa-sha2-nistp256,ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
        assert_eq!(
            hostkey_preference(&[], &supported),
            "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
    }
}
