//! Turning a bare refusal into the error a local filesystem would give.
//!
//! SFTP v3 often answers only "failure" and FTP only "550": neither says
//! whether the path was missing, taken, a directory or not empty. The
//! protocols ask their follow-up questions through `Looks` (what kind of
//! thing a path names, whether a directory has entries), and this table,
//! written once for both, reads the answers as rename(2), mkdir(2) and the
//! others would report.
//!
//! Must not: know a protocol (no replies, no status codes), or swallow an
//! error that broke the connection while looking: the pool must see it.

use std::path::Path;

use super::{Error, Kind, Result};

/// What an operation needs at a path, to explain its refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The operation creates the path (mkdir, symlink, exclusive create).
    Absent,
    /// The operation writes a file at the path, new or existing (an upload).
    NewFile,
    /// The operation needs a non-directory (unlink, a download).
    NotDir,
    /// The operation removes an empty directory.
    EmptyDir,
    /// The operation lists or enters a directory.
    Dir,
    /// Anything else that needs the path to exist.
    Exists,
}

/// What a protocol makes of a refusal the looks cannot narrow down, and
/// what its rename does with an existing file at the target.
#[derive(Clone, Copy, Debug)]
pub struct Refusals {
    /// Report permission denied (FTP: a 550 is most often that) rather
    /// than the server's own bare error (SFTP's "failure").
    pub unexplained_is_denied: bool,
    /// The protocol's rename replaces an existing file, so an existing
    /// file at the target explains nothing.
    pub rename_replaces_files: bool,
}

/// The follow-up questions a protocol can answer about paths.
pub trait Looks {
    /// The kind of what `path` names (a symlink is not followed).
    fn kind(&mut self, path: &Path) -> Result<Kind>;
    /// Whether the directory `dir` has entries.
    fn has_entries(&mut self, dir: &Path) -> Result<bool>;
}

/// The exact error for `bare`, the answer of an operation that needed
/// `expect` at `path`. Only a bare failure (`Error::Failure`) is looked
/// into; any other error already says what it is.
pub fn explain(
    bare: Error,
    path: &Path,
    expect: Expect,
    rules: Refusals,
    looks: &mut impl Looks,
) -> Error {
    if !matches!(bare, Error::Failure(_)) {
        return bare;
    }
    let looked = looks.kind(path);
    read_look(unexplained(bare, rules), path, expect, looked, looks)
}

/// The exact error for `bare`, the answer of a rename of `from` to `to`:
/// the two sides compared as rename(2) would.
pub fn explain_rename(
    bare: Error,
    from: &Path,
    to: &Path,
    rules: Refusals,
    looks: &mut impl Looks,
) -> Error {
    if !matches!(bare, Error::Failure(_)) {
        return bare;
    }
    let otherwise = unexplained(bare, rules);
    let src = match looks.kind(from) {
        Ok(kind) => kind,
        failed => return read_look(otherwise, from, Expect::Exists, failed, looks),
    };
    match (src == Kind::Dir, looks.kind(to)) {
        (false, Ok(Kind::Dir)) => Error::IsADirectory,
        // A directory replaces only an empty directory.
        (true, Ok(kind)) => read_look(otherwise, to, Expect::EmptyDir, Ok(kind), looks),
        (false, Ok(_)) if rules.rename_replaces_files => otherwise,
        (false, Ok(_)) => Error::Exists,
        (_, failed) => read_look(otherwise, to, Expect::NewFile, failed, looks),
    }
}

/// The error to report when the looks tell nothing more.
fn unexplained(bare: Error, rules: Refusals) -> Error {
    if rules.unexplained_is_denied {
        Error::PermissionDenied
    } else {
        bare
    }
}

/// The table: what `looked` (the kind of `path`, or why it could not be
/// told) means for an operation that needed `expect`; `otherwise` where
/// it means nothing.
fn read_look(
    otherwise: Error,
    path: &Path,
    expect: Expect,
    looked: Result<Kind>,
    looks: &mut impl Looks,
) -> Error {
    match (expect, looked) {
        (_, Err(e)) if e.breaks_connection() => e,
        (Expect::Absent, Ok(_)) => Error::Exists,
        (Expect::Absent | Expect::NewFile, Err(Error::NotFound)) if parent_missing(path, looks) => {
            Error::NotFound
        }
        (Expect::NotDir | Expect::NewFile, Ok(Kind::Dir)) => Error::IsADirectory,
        (Expect::EmptyDir | Expect::Dir, Ok(kind)) if kind != Kind::Dir => Error::NotADirectory,
        (Expect::EmptyDir, Ok(_)) => match looks.has_entries(path) {
            Ok(true) => Error::NotEmpty,
            Err(e) if e.breaks_connection() => e,
            _ => otherwise,
        },
        (Expect::Dir, Err(Error::NotADirectory)) => Error::NotADirectory,
        (Expect::Absent | Expect::NewFile, _) => otherwise,
        (_, Err(Error::NotFound | Error::NotADirectory)) => Error::NotFound,
        _ => otherwise,
    }
}

/// Whether the directory `path` would be made in is missing.
fn parent_missing(path: &Path, looks: &mut impl Looks) -> bool {
    path.parent().is_some_and(|parent| {
        matches!(
            looks.kind(parent),
            Err(Error::NotFound | Error::NotADirectory)
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    const SFTP: Refusals = Refusals {
        unexplained_is_denied: false,
        rename_replaces_files: false,
    };
    const FTP: Refusals = Refusals {
        unexplained_is_denied: true,
        rename_replaces_files: true,
    };

    /// A tree of paths with what a look at each says; a path not in it is
    /// missing. `broken` makes every look break the connection.
    #[derive(Default)]
    struct Tree {
        kinds: HashMap<PathBuf, Kind>,
        full: Vec<PathBuf>,
        refused: Vec<PathBuf>,
        under_file: Vec<PathBuf>,
        broken: bool,
    }

    impl Tree {
        fn with(mut self, path: &str, kind: Kind) -> Tree {
            self.kinds.insert(PathBuf::from(path), kind);
            self
        }
        fn full(mut self, path: &str) -> Tree {
            self.full.push(PathBuf::from(path));
            self.with(path, Kind::Dir)
        }
    }

    impl Looks for Tree {
        fn kind(&mut self, path: &Path) -> Result<Kind> {
            if self.broken {
                return Err(Error::Transport("cut".into()));
            }
            if self.refused.iter().any(|p| p == path) {
                return Err(Error::PermissionDenied);
            }
            if self.under_file.iter().any(|p| p == path) {
                return Err(Error::NotADirectory);
            }
            self.kinds.get(path).copied().ok_or(Error::NotFound)
        }
        fn has_entries(&mut self, dir: &Path) -> Result<bool> {
            Ok(self.full.iter().any(|p| p == dir))
        }
    }

    fn bare() -> Error {
        Error::Failure("no".into())
    }

    fn tree() -> Tree {
        Tree::default()
            .with("/", Kind::Dir)
            .with("/d", Kind::Dir)
            .with("/f", Kind::File)
            .with("/l", Kind::Symlink)
            .full("/full")
    }

    fn explained(tree: &mut Tree, path: &str, expect: Expect, rules: Refusals) -> Error {
        explain(bare(), Path::new(path), expect, rules, tree)
    }

    #[test]
    fn only_a_bare_failure_is_looked_into() {
        let mut broken = Tree {
            broken: true,
            ..tree()
        };
        let e = explain(
            Error::NoSpace,
            Path::new("/f"),
            Expect::NewFile,
            FTP,
            &mut broken,
        );
        assert!(matches!(e, Error::NoSpace));
    }

    #[test]
    fn what_each_operation_finds_at_its_path() {
        use Error as E;
        use Expect as X;
        let cases = [
            ("/f", X::Absent, E::Exists),
            ("/d", X::Absent, E::Exists),
            ("/nowhere/x", X::Absent, E::NotFound),
            ("/d", X::NewFile, E::IsADirectory),
            ("/nowhere/x", X::NewFile, E::NotFound),
            ("/d", X::NotDir, E::IsADirectory),
            ("/x", X::NotDir, E::NotFound),
            ("/f", X::EmptyDir, E::NotADirectory),
            ("/full", X::EmptyDir, E::NotEmpty),
            ("/x", X::EmptyDir, E::NotFound),
            ("/l", X::Dir, E::NotADirectory),
            ("/x", X::Dir, E::NotFound),
            ("/x", X::Exists, E::NotFound),
        ];
        for (path, expect, want) in cases {
            for rules in [SFTP, FTP] {
                let got = explained(&mut tree(), path, expect, rules);
                let same = std::mem::discriminant(&got) == std::mem::discriminant(&want);
                assert!(same, "{path} {expect:?}: {got:?}");
            }
        }
    }

    #[test]
    fn what_tells_nothing_is_the_protocols_unexplained_error() {
        for (path, expect) in [
            ("/x", Expect::Absent),
            ("/f", Expect::NewFile),
            ("/f", Expect::NotDir),
            ("/d", Expect::EmptyDir),
            ("/d", Expect::Dir),
            ("/f", Expect::Exists),
        ] {
            let sftp = explained(&mut tree(), path, expect, SFTP);
            assert!(matches!(sftp, Error::Failure(_)), "{path} {expect:?}");
            let ftp = explained(&mut tree(), path, expect, FTP);
            assert!(matches!(ftp, Error::PermissionDenied), "{path} {expect:?}");
        }
    }

    #[test]
    fn a_path_under_a_file_is_missing_except_to_a_directory_operation() {
        let mut t = Tree {
            under_file: vec![PathBuf::from("/f/x")],
            ..tree()
        };
        let e = explained(&mut t, "/f/x", Expect::Exists, SFTP);
        assert!(matches!(e, Error::NotFound));
        let e = explained(&mut t, "/f/x", Expect::Dir, FTP);
        assert!(matches!(e, Error::NotADirectory));
    }

    /// A look that broke the connection is what is reported, whatever the
    /// operation: the pool must drop the connection. One that failed
    /// otherwise tells nothing.
    #[test]
    fn a_failed_look_keeps_a_broken_connection_visible() {
        for expect in [
            Expect::Absent,
            Expect::NewFile,
            Expect::NotDir,
            Expect::EmptyDir,
            Expect::Dir,
            Expect::Exists,
        ] {
            let mut broken = Tree {
                broken: true,
                ..tree()
            };
            let e = explained(&mut broken, "/f", expect, SFTP);
            assert!(e.breaks_connection(), "{expect:?}: {e:?}");
            let e = explain_rename(bare(), Path::new("/f"), Path::new("/g"), FTP, &mut broken);
            assert!(e.breaks_connection(), "{e:?}");
        }
        let mut refused = Tree {
            refused: vec![PathBuf::from("/f")],
            ..tree()
        };
        let e = explained(&mut refused, "/f", Expect::Exists, SFTP);
        assert!(matches!(e, Error::Failure(_)), "{e:?}");
    }

    #[test]
    fn a_rename_compares_its_two_sides() {
        let rename = |from: &str, to: &str, rules| {
            explain_rename(bare(), Path::new(from), Path::new(to), rules, &mut tree())
        };
        for rules in [SFTP, FTP] {
            assert!(matches!(rename("/x", "/y", rules), Error::NotFound));
            assert!(matches!(rename("/f", "/d", rules), Error::IsADirectory));
            assert!(matches!(rename("/d", "/f", rules), Error::NotADirectory));
            assert!(matches!(rename("/d", "/full", rules), Error::NotEmpty));
            assert!(matches!(rename("/f", "/nowhere/y", rules), Error::NotFound));
        }
        // An existing file at the target: plain SFTP rename refuses it.
        assert!(matches!(rename("/f", "/l", SFTP), Error::Exists));
        assert!(matches!(rename("/f", "/l", FTP), Error::PermissionDenied));
        assert!(matches!(rename("/d", "/d", SFTP), Error::Failure(_)));
        assert!(matches!(rename("/f", "/y", SFTP), Error::Failure(_)));
    }
}
