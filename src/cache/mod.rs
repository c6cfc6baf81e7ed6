//! Caches between the filesystem logic and the server: attributes, negative
//! lookups and directory listings (`meta`), and file content blocks
//! (`blocks`). They hold data and enforce their bounds (TTL, entry count,
//! byte budget); deciding when to invalidate is the filesystem logic's job.
//! Nothing here talks to the network or knows FUSE, but
//! `BlockCache::get_or_fetch` runs the caller's fetch and may wait for
//! another thread's: never call it on the FUSE dispatcher.

pub mod blocks;
pub mod meta;
