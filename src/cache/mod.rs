//! Caches between the filesystem logic and the server: attributes, negative
//! lookups and directory listings (`meta`), and file content blocks
//! (`blocks`). They hold data and enforce their bounds (TTL, entry count,
//! byte budget); deciding when to invalidate is the filesystem logic's job.
//! Nothing here talks to the network or knows FUSE.

pub mod blocks;
pub mod meta;
