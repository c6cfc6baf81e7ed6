//! Key material shared by the SSH modules' tests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub(super) fn hashed(name: &str, salt: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("hmac key");
    mac.update(name.as_bytes());
    format!(
        "|1|{}|{}",
        STANDARD.encode(salt),
        STANDARD.encode(mac.finalize().into_bytes())
    )
}

// A throwaway ed25519 key (ssh-keygen -t ed25519 -C test) and the
// fingerprint `ssh-keygen -lf` printed for it.
pub(super) const ED25519_PUB: &str =
    "AAAAC3NzaC1lZDI1NTE5AAAAIN+DZTM2PttOLx/liOAuSgU3OsP/hQbhQS71cJXM3G3y";
pub(super) const ED25519_FP: &str = "SHA256:D5KFNrcOFQQGsI7faouCIHjEdWrdh8APqj8HFMhbSgY";

pub(super) fn blob(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64).expect("test key")
}
