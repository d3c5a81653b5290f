//! Binding the listening sockets (IPv6 sockets are v6-only so `[::]` and `0.0.0.0` coexist).

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// Bind one listener. Must be called inside the tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Bind every address. An IPv6 address on a kernel without IPv6 is skipped with a warning;
/// any other failure is an error, and so is ending up with no listener.
pub fn bind_all(addrs: &[SocketAddr]) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        match bind(*addr) {
            Ok(l) => out.push(l),
            Err(e) if addr.is_ipv6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                tracing::warn!(%addr, "IPv6 is not available on this kernel; not listening there");
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
        }
    }
    anyhow::ensure!(!out.is_empty(), "no address to listen on could be bound");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn v4_and_v6_wildcards_share_a_port() {
        let v4 = bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = v4.local_addr().unwrap().port();
        match bind(SocketAddr::from(([0u16; 8], port))) {
            Ok(v6) => assert_eq!(v6.local_addr().unwrap().port(), port),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                println!("skipping the IPv6 half: IPv6 not available here");
            }
            Err(e) => panic!("v6 wildcard on the same port failed: {e}"),
        }
    }

    #[tokio::test]
    async fn busy_port_is_an_error_naming_the_address() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind_all(&[addr]).unwrap_err();
        assert_eq!(err.to_string(), format!("cannot listen on {addr}"));
    }
}
