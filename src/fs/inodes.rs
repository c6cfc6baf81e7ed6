//! The inode table: kernel inode numbers ↔ remote paths, with the kernel's
//! lookup counts so entries can be forgotten.
//!
//! Owns numbering and renames (a renamed directory moves its whole subtree).
//! It does not know attributes or talk to the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const ROOT: u64 = 1;

/// Marks the path of an inode whose name is gone. A NUL byte can never
/// occur in a real path, so such a path is never sent to the server.
const DETACHED: &str = "\0deleted-";

pub fn is_detached(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().contains(&0)
}

struct Node {
    path: PathBuf,
    lookups: u64,
}

pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next: u64,
    /// How many inodes were dropped so far: a path looked up again after
    /// that gets a new number.
    removals: u64,
}

impl Inodes {
    pub fn new(root: &Path) -> Inodes {
        let mut inodes = Inodes {
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT + 1,
            removals: 0,
        };
        inodes.nodes.insert(
            ROOT,
            Node {
                path: root.to_path_buf(),
                lookups: 1,
            },
        );
        inodes.by_path.insert(root.to_path_buf(), ROOT);
        inodes
    }

    pub fn path(&self, ino: u64) -> Option<&Path> {
        self.nodes.get(&ino).map(|n| n.path.as_path())
    }

    /// Every inode the kernel knows, with its path.
    pub fn all(&self) -> impl Iterator<Item = (u64, &Path)> {
        self.nodes.iter().map(|(&ino, n)| (ino, n.path.as_path()))
    }

    pub fn ino(&self, path: &Path) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode for `path`, counting one kernel lookup.
    pub fn lookup(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                path: path.to_path_buf(),
                lookups: 1,
            },
        );
        self.by_path.insert(path.to_path_buf(), ino);
        ino
    }

    /// The kernel dropped `n` lookups. Returns true when the inode is gone.
    pub fn forget(&mut self, ino: u64, n: u64) -> bool {
        if ino == ROOT {
            return false;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return true;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups > 0 {
            return false;
        }
        if let Some(node) = self.nodes.remove(&ino) {
            self.removals += 1;
            if self.by_path.get(&node.path) == Some(&ino) {
                self.by_path.remove(&node.path);
            }
        }
        true
    }

    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// `from` now lives at `to`: moves it and everything below it. An inode
    /// that was at `to` keeps existing (open files) but loses its name.
    pub fn rename(&mut self, from: &Path, to: &Path) {
        if let Some(old) = self.by_path.remove(to) {
            self.detach(old);
        }
        let moved: Vec<(u64, PathBuf)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.path.starts_with(from))
            .map(|(&ino, n)| (ino, n.path.clone()))
            .collect();
        for (ino, old_path) in moved {
            let Ok(rest) = old_path.strip_prefix(from) else {
                continue;
            };
            let new_path = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            if self.by_path.get(&old_path) == Some(&ino) {
                self.by_path.remove(&old_path);
            }
            self.by_path.insert(new_path.clone(), ino);
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = new_path;
            }
        }
    }

    /// The name at `path` is gone; its inode stays until forgotten.
    pub fn unlinked(&mut self, path: &Path) {
        if let Some(ino) = self.by_path.remove(path) {
            self.detach(ino);
        }
    }

    fn detach(&mut self, ino: u64) {
        // Keep the node (the kernel may still hold it) under a path that no
        // lookup can produce, so it is never confused with a new file.
        if let Some(node) = self.nodes.get_mut(&ino) {
            let mut orphan = node.path.clone().into_os_string();
            orphan.push(DETACHED);
            orphan.push(ino.to_string());
            node.path = PathBuf::from(orphan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_forget_and_rename_subtree() {
        let mut t = Inodes::new(Path::new("/r"));
        let d = t.lookup(Path::new("/r/d"));
        let f = t.lookup(Path::new("/r/d/f"));
        assert_eq!(t.lookup(Path::new("/r/d")), d);
        t.rename(Path::new("/r/d"), Path::new("/r/e"));
        assert_eq!(t.path(f), Some(Path::new("/r/e/f")));
        assert_eq!(t.ino(Path::new("/r/e")), Some(d));
        assert_eq!(t.ino(Path::new("/r/d/f")), None);
        assert!(!t.forget(d, 1));
        assert!(t.forget(d, 1));
        assert_eq!(t.path(d), None);
    }

    #[test]
    fn rename_over_detaches_target() {
        let mut t = Inodes::new(Path::new("/"));
        let a = t.lookup(Path::new("/a"));
        let b = t.lookup(Path::new("/b"));
        t.rename(Path::new("/a"), Path::new("/b"));
        assert_eq!(t.ino(Path::new("/b")), Some(a));
        assert_ne!(t.path(b), Some(Path::new("/b")));
        let c = t.lookup(Path::new("/bc"));
        t.rename(Path::new("/b"), Path::new("/x"));
        assert_eq!(t.path(c), Some(Path::new("/bc")));
    }
}
