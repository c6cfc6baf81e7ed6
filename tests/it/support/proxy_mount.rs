//! Mounting a test server through a [`FaultProxy`]: the URL and options
//! that reach the server through the proxy's port. Owns only that glue; the
//! proxy itself (proxy.rs) must not depend on the servers or mounts, since
//! the helper binary includes it without the rest of the support.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{FaultProxy, Mount, Proto, Server};

impl FaultProxy {
    /// A proxy in front of a test server's control port.
    pub fn for_server(server: &Server) -> FaultProxy {
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port)))
    }
}

/// rmount options and URL that reach `server` through `proxy`: the server's
/// own URL with the proxy's port, and for SFTP a known_hosts file that holds
/// the server's host key under `[127.0.0.1]:PROXYPORT` (known_hosts entries
/// are keyed by port). The file lives in the server's temp dir, so it lasts
/// as long as the server (reconnects read it again).
pub fn proxy_url_and_args(server: &Server, proxy: &FaultProxy) -> (String, Vec<String>) {
    let url = server.remote_url().replacen(
        &format!("127.0.0.1:{}", server.port),
        &format!("127.0.0.1:{}", proxy.port()),
        1,
    );
    let mut args = Vec::new();
    if server.proto == Proto::Sftp {
        let kh: PathBuf = server
            .dir()
            .join(format!("known_hosts-proxy-{}", proxy.port()));
        let line = format!(
            "[127.0.0.1]:{} {}\n",
            proxy.port(),
            server.host_public_key_line()
        );
        fs::write(&kh, line).expect("write the proxy's known_hosts");
        // Comes after the server's own -o UserKnownHostsFile: the last wins.
        args.push("-o".to_string());
        args.push(format!("UserKnownHostsFile={}", kh.display()));
    }
    (url, args)
}

/// Mounts `server`'s export through `proxy` (see [`proxy_url_and_args`]),
/// with `extra` rmount options. Panics with rmount's output on failure.
pub fn mount_via_proxy(server: &Server, proxy: &FaultProxy, extra: &[&str]) -> Mount {
    let (url, mut args) = proxy_url_and_args(server, proxy);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Mount::with_url(server, &url, &args)
}
