//! rmount's integration tests, as one test binary: each module below was a
//! test binary of its own, and every one of them compiled `support` again.
//! Tests are named by module, e.g. `fs_ops::sftp::append`; run one
//! module with `cargo test --test it -- fs_ops::` (a filter is a substring
//! of the name: `ftp::` alone also picks every suite's `ftp` and `sftp`
//! server modules, see ftp.rs for the exact filter).
//!
//! All tests share this process: what `support` keeps in statics (free
//! ports, shared servers, the load lock of `support::load`) is shared by
//! every module. Processes that must not be this multi-threaded process
//! (the soak workers, the rewriter) come from the `rmount-test-helper`
//! binary (tests/helper/).

// First: its macros (`on_every_server!`, `per_protocol!`) are in scope only
// for the modules declared after it.
#[macro_use]
mod support;

mod cli_errors;
mod cold_metadata;
mod fs_ops;
mod fstab;
mod ftp;
mod host_keys;
mod hostile;
mod memory;
mod mount_options;
mod reliability;
mod server_side;
mod ssh_config;
mod stats;
mod support_smoke;
mod tools;
