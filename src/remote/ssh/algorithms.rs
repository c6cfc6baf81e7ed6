//! ssh-style algorithm lists (`Ciphers`, `KexAlgorithms`, `MACs`,
//! `HostKeyAlgorithms`) turned into libssh2 method preferences: a plain
//! list replaces the defaults, `+list` appends, `-list` removes (wildcards
//! allowed), `^list` moves to the front. Names libssh2 lacks are dropped.
//!
//! It sets preferences only; it never decides trust.

use ssh2::{MethodType, Session};

use super::Algorithms;
use crate::remote::Error;

/// ssh's `*`/`?` pattern match.
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard(rest, &s[1..]),
    }
}

/// The preference list for `spec` given libssh2's `supported` list (in its
/// default order). `None`: keep the default.
pub(super) fn preference(spec: &str, supported: &[&str]) -> Result<Option<String>, String> {
    let spec = spec.trim();
    let (op, list) = match spec.as_bytes().first() {
        Some(b'+' | b'-' | b'^') => (spec.as_bytes()[0], &spec[1..]),
        _ => (b'=', spec),
    };
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let chosen: Vec<&str> = match op {
        b'+' => return Ok(None),
        b'-' => supported
            .iter()
            .copied()
            .filter(|a| !names.iter().any(|p| wildcard(p.as_bytes(), a.as_bytes())))
            .collect(),
        b'^' => {
            let front: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| supported.contains(n))
                .collect();
            let rest = supported.iter().copied().filter(|a| !front.contains(a));
            front.iter().copied().chain(rest).collect()
        }
        _ => names
            .iter()
            .copied()
            .filter(|n| supported.contains(n))
            .collect(),
    };
    if chosen.is_empty() {
        return Err(format!("none of the algorithms '{spec}' is supported"));
    }
    Ok(Some(chosen.join(",")))
}

/// Sets the preferences for every list given, before the handshake.
pub(super) fn apply(sess: &Session, algs: &Algorithms) -> Result<(), Error> {
    let lists: [(&Option<String>, &str, &[MethodType]); 3] = [
        (&algs.kex, "KexAlgorithms", &[MethodType::Kex]),
        (
            &algs.ciphers,
            "Ciphers",
            &[MethodType::CryptCs, MethodType::CryptSc],
        ),
        (&algs.macs, "MACs", &[MethodType::MacCs, MethodType::MacSc]),
    ];
    for (spec, name, methods) in lists {
        let Some(spec) = spec else { continue };
        for &method in methods {
            set(sess, method, spec, name)?;
        }
    }
    Ok(())
}

/// Sets one method's preference from an ssh-style list; whether it changed
/// the default.
pub(super) fn set(
    sess: &Session,
    method: MethodType,
    spec: &str,
    name: &str,
) -> Result<bool, Error> {
    let supported = sess
        .supported_algs(method)
        .map_err(|e| Error::Setup(format!("cannot list the supported {name}: {e}")))?;
    let pref = preference(spec, &supported).map_err(|e| Error::Setup(format!("{name}: {e}")))?;
    match pref {
        Some(pref) => {
            sess.method_pref(method, &pref)
                .map_err(|e| Error::Setup(format!("{name} {pref}: {e}")))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUP: &[&str] = &["a-1", "a-2", "b-1", "c"];

    #[test]
    fn list_syntax() {
        assert_eq!(
            preference("c,a-2,zz", SUP).unwrap().as_deref(),
            Some("c,a-2")
        );
        assert_eq!(preference("+zz", SUP).unwrap(), None);
        assert_eq!(preference("-a-*", SUP).unwrap().as_deref(), Some("b-1,c"));
        assert_eq!(
            preference("^c,b-1", SUP).unwrap().as_deref(),
            Some("c,b-1,a-1,a-2")
        );
        assert!(preference("zz", SUP).is_err());
        assert!(preference("-*", SUP).is_err());
    }

    #[test]
    fn real_session_accepts_a_cipher_list() {
        let sess = Session::new().unwrap();
        let algs = Algorithms {
            ciphers: Some("aes256-ctr,aes128-ctr".into()),
            ..Default::default()
        };
        apply(&sess, &algs).unwrap();
    }
}
