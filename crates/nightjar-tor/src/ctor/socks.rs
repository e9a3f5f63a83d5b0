//! A SOCKS5 client for tor's SocksPort (RFC 1928, username/password from RFC
//! 1929), keeping tor's onion-service reply codes (0xF0-0xF7, sent with the
//! `ExtendedErrors` port flag) that general-purpose clients fold into one error.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{BoxStream, TorError};

/// Where tor's SOCKS port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksAddr {
    /// A TCP port on loopback.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

impl SocksAddr {
    /// Parses one entry of `GETINFO net/listeners/socks` (`127.0.0.1:9050` or
    /// `unix:/path`).
    pub fn parse_listener(s: &str) -> Option<Self> {
        match s.strip_prefix("unix:") {
            Some(path) => Some(Self::Unix(PathBuf::from(path))),
            None => s.parse().ok().map(Self::Tcp),
        }
    }
}

/// A failed SOCKS request.
#[derive(Debug)]
pub(crate) enum SocksFailure {
    /// tor answered with this reply code.
    Reply(u8),
    /// The SOCKS conversation itself went wrong.
    Protocol(String),
    /// Reaching tor failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for SocksFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl fmt::Display for SocksFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reply(code) => write!(f, "{} (SOCKS reply {code:#04x})", reply_text(*code)),
            Self::Protocol(m) => f.write_str(m),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl SocksFailure {
    /// Worth trying again shortly: the service may not have published its
    /// descriptor yet, or a circuit failed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Reply(0x01 | 0x04 | 0x06 | 0xF0 | 0xF2 | 0xF3 | 0xF7)
        )
    }

    /// tor found no descriptor (on the HSDirs it was still willing to ask).
    pub(crate) fn is_descriptor_not_found(&self) -> bool {
        matches!(self, Self::Reply(0xF0))
    }

    /// Introduction or rendezvous failed or timed out: what a client sees when
    /// its cached descriptor names introduction points the service left.
    pub(crate) fn is_stale_descriptor_symptom(&self) -> bool {
        matches!(self, Self::Reply(0x06 | 0xF2 | 0xF3 | 0xF7))
    }

    /// tor has no client-authorization key for the service.
    pub(crate) fn is_missing_client_auth(&self) -> bool {
        matches!(self, Self::Reply(0xF4))
    }

    pub(crate) fn into_tor_error(self) -> TorError {
        match self {
            Self::Reply(0xF4) => TorError::ClientAuthRequired,
            Self::Reply(0xF5) => TorError::ClientAuthRejected,
            Self::Reply(code) => TorError::ServiceUnreachable(reply_text(code).to_owned()),
            Self::Protocol(m) => TorError::Protocol(m),
            Self::Io(e) => TorError::Io(e),
        }
    }
}

/// What each reply code means, in words for people.
fn reply_text(code: u8) -> &'static str {
    match code {
        0x01 => "general failure",
        0x02 => "not allowed by tor's rules",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused by the service",
        0x06 => "timed out",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        0xF0 => "its descriptor was not found: it is offline or not yet published",
        0xF1 => "its descriptor is invalid",
        0xF2 => "introduction failed",
        0xF3 => "rendezvous failed",
        0xF4 => "client authorization required",
        0xF5 => "client authorization rejected",
        0xF6 => "invalid onion address",
        0xF7 => "introduction timed out",
        _ => "unknown SOCKS error",
    }
}

/// Opens a stream to `host:port` through tor at `proxy`, with SOCKS
/// username/password authentication (tor's `IsolateSOCKSAuth` puts streams with
/// different credentials on different circuits).
pub(crate) async fn connect(
    proxy: &SocksAddr,
    host: &str,
    port: u16,
    username: &str,
    password: &str,
) -> Result<BoxStream, SocksFailure> {
    match proxy {
        SocksAddr::Tcp(addr) => {
            if !addr.ip().is_loopback() {
                return Err(SocksFailure::Protocol(
                    "tor's SOCKS port must be on a loopback address".into(),
                ));
            }
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            handshake(&mut s, host, port, username, password).await?;
            Ok(Box::new(s))
        }
        SocksAddr::Unix(path) => {
            let mut s = tokio::net::UnixStream::connect(path).await?;
            handshake(&mut s, host, port, username, password).await?;
            Ok(Box::new(s))
        }
    }
}

/// The SOCKS5 conversation on an open stream.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    port: u16,
    username: &str,
    password: &str,
) -> Result<(), SocksFailure> {
    let field = |v: &str, what: &str| -> Result<u8, SocksFailure> {
        match u8::try_from(v.len()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(SocksFailure::Protocol(format!(
                "SOCKS {what} must be 1 to 255 bytes"
            ))),
        }
    };
    let (ulen, plen, hlen) = (
        field(username, "username")?,
        field(password, "password")?,
        field(host, "host name")?,
    );
    // Offer username/password only: without it tor could not isolate streams.
    s.write_all(&[5, 1, 2]).await?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await?;
    if choice != [5, 2] {
        return Err(SocksFailure::Protocol(format!(
            "tor's SOCKS port refused username/password authentication ({choice:02x?})"
        )));
    }
    let mut auth = Vec::with_capacity(3 + username.len() + password.len());
    auth.extend_from_slice(&[1, ulen]);
    auth.extend_from_slice(username.as_bytes());
    auth.push(plen);
    auth.extend_from_slice(password.as_bytes());
    s.write_all(&auth).await?;
    let mut status = [0u8; 2];
    s.read_exact(&mut status).await?;
    if status[1] != 0 {
        return Err(SocksFailure::Protocol(
            "tor's SOCKS port rejected our credentials".into(),
        ));
    }
    let mut req = Vec::with_capacity(7 + host.len());
    req.extend_from_slice(&[5, 1, 0, 3, hlen]);
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(SocksFailure::Protocol("not a SOCKS5 reply".into()));
    }
    // The bound address follows even on failure; read it so the reply is whole.
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            usize::from(n[0])
        }
        t => {
            return Err(SocksFailure::Protocol(format!(
                "bad SOCKS address type {t}"
            )));
        }
    };
    let mut rest = vec![0u8; addr_len + 2];
    s.read_exact(&mut rest).await?;
    match head[1] {
        0 => Ok(()),
        code => Err(SocksFailure::Reply(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the handshake against a scripted server that answers `reply`.
    async fn against(reply: &'static [u8]) -> (Result<(), SocksFailure>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move {
            let mut got = vec![0u8; 3];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(&[5, 2]).await.unwrap();
            let mut auth = [0u8; 2 + 4 + 1 + 1];
            server.read_exact(&mut auth).await.unwrap();
            got.extend_from_slice(&auth);
            server.write_all(&[1, 0]).await.unwrap();
            let mut req = vec![0u8; 5 + 62 + 2];
            server.read_exact(&mut req).await.unwrap();
            got.extend_from_slice(&req);
            server.write_all(reply).await.unwrap();
            got
        });
        let host = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion";
        let r = handshake(&mut client, host, 80, "nj-1", "x").await;
        (r, srv.await.unwrap())
    }

    #[tokio::test]
    async fn success_and_wire_format() {
        let (r, sent) = against(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await;
        assert!(r.is_ok());
        assert_eq!(&sent[..3], &[5, 1, 2]);
        assert_eq!(&sent[3..11], b"\x01\x04nj-1\x01x");
        assert_eq!(&sent[11..16], &[5, 1, 0, 3, 62]);
        assert_eq!(&sent[sent.len() - 2..], &[0, 80]);
    }

    #[tokio::test]
    async fn onion_errors_map_to_tor_errors() {
        let (r, _) = against(&[5, 0xF4, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        let e = r.unwrap_err();
        assert!(!e.is_transient());
        assert!(matches!(e.into_tor_error(), TorError::ClientAuthRequired));
        let (r, _) = against(&[5, 0xF5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        assert!(matches!(
            r.unwrap_err().into_tor_error(),
            TorError::ClientAuthRejected
        ));
        let (r, _) = against(&[5, 0xF0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        let e = r.unwrap_err();
        assert!(e.is_transient());
        assert!(
            matches!(e.into_tor_error(), TorError::ServiceUnreachable(m) if m.contains("descriptor"))
        );
    }

    #[test]
    fn listener_addresses() {
        assert_eq!(
            SocksAddr::parse_listener("127.0.0.1:9050"),
            Some(SocksAddr::Tcp("127.0.0.1:9050".parse().unwrap()))
        );
        assert_eq!(
            SocksAddr::parse_listener("unix:/run/tor/socks"),
            Some(SocksAddr::Unix("/run/tor/socks".into()))
        );
        assert_eq!(SocksAddr::parse_listener("nonsense"), None);
    }
}
