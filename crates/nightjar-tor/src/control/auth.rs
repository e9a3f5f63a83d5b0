//! Authenticating to tor's control port: SAFECOOKIE (preferred: tor proves it
//! knows the cookie before we reveal anything), COOKIE, or NULL when tor asks
//! for nothing. Passwords are not supported: a tor we launch uses cookies, and a
//! tor we attach to should too.

use std::path::{Path, PathBuf};

use hmac::{KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::reply::{Args, Reply};
use crate::TorError;

type HmacSha256 = hmac::Hmac<Sha256>;

const SERVER_KEY: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const CLIENT_KEY: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

/// What `PROTOCOLINFO 1` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProtocolInfo {
    pub methods: Vec<String>,
    pub cookie_file: Option<PathBuf>,
    pub tor_version: Option<String>,
}

impl ProtocolInfo {
    pub(super) fn parse(reply: &Reply) -> Result<Self, TorError> {
        let mut info = ProtocolInfo {
            methods: Vec::new(),
            cookie_file: None,
            tor_version: None,
        };
        for line in &reply.lines {
            let args = Args::parse(&line.text).map_err(|e| TorError::Protocol(e.to_string()))?;
            match args.positional.first().map(String::as_str) {
                Some("AUTH") => {
                    info.methods = args
                        .get("METHODS")
                        .unwrap_or("")
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect();
                    info.cookie_file = args.get("COOKIEFILE").map(PathBuf::from);
                }
                Some("VERSION") => info.tor_version = args.get("Tor").map(str::to_owned),
                _ => {}
            }
        }
        if info.methods.is_empty() {
            return Err(TorError::Protocol(
                "PROTOCOLINFO named no authentication method".into(),
            ));
        }
        Ok(info)
    }

    pub(super) fn has(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// Reads tor's 32-byte authentication cookie.
pub(super) async fn read_cookie(path: &Path) -> Result<Zeroizing<Vec<u8>>, TorError> {
    let cookie = Zeroizing::new(tokio::fs::read(path).await.map_err(|e| {
        TorError::Config(format!(
            "cannot read tor's control cookie {}: {e}",
            path.display()
        ))
    })?);
    if cookie.len() != 32 {
        return Err(TorError::Protocol(format!(
            "tor's control cookie has {} bytes, not 32",
            cookie.len()
        )));
    }
    Ok(cookie)
}

fn mac(
    key: &[u8],
    cookie: &[u8],
    client_nonce: &[u8],
    server_nonce: &[u8],
) -> Result<HmacSha256, TorError> {
    // HMAC takes keys of any length, so this cannot fail in practice.
    let mut m = HmacSha256::new_from_slice(key)
        .map_err(|_| TorError::Protocol("HMAC key rejected".into()))?;
    m.update(cookie);
    m.update(client_nonce);
    m.update(server_nonce);
    Ok(m)
}

/// Checks tor's `AUTHCHALLENGE` answer and returns the hex string to send with
/// `AUTHENTICATE`.
pub(super) fn safecookie_response(
    reply: &Reply,
    cookie: &[u8],
    client_nonce: &[u8; 32],
) -> Result<Zeroizing<String>, TorError> {
    let args = Args::parse(reply.first()).map_err(|e| TorError::Protocol(e.to_string()))?;
    let hex = |k: &str| {
        args.get(k)
            .and_then(|v| data_encoding::HEXUPPER_PERMISSIVE.decode(v.as_bytes()).ok())
            .ok_or_else(|| TorError::Protocol(format!("AUTHCHALLENGE reply lacks {k}")))
    };
    let server_hash = hex("SERVERHASH")?;
    let server_nonce = hex("SERVERNONCE")?;
    mac(SERVER_KEY, cookie, client_nonce, &server_nonce)?
        .verify_slice(&server_hash)
        .map_err(|_| {
            TorError::Protocol(
                "the control port does not know tor's cookie (is something else listening?)".into(),
            )
        })?;
    let client_hash = mac(CLIENT_KEY, cookie, client_nonce, &server_nonce)?
        .finalize()
        .into_bytes();
    Ok(Zeroizing::new(data_encoding::HEXUPPER.encode(&client_hash)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::reply::ReplyParser;

    fn reply(lines: &[&str]) -> Reply {
        let mut p = ReplyParser::new();
        let mut out = None;
        for l in lines {
            out = p.push_line(l).unwrap();
        }
        out.unwrap()
    }

    #[test]
    fn protocolinfo() {
        let info = ProtocolInfo::parse(&reply(&[
            "250-PROTOCOLINFO 1",
            "250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/run/tor/control.authcookie\"",
            "250-VERSION Tor=\"0.4.9.11\"",
            "250 OK",
        ]))
        .unwrap();
        assert!(info.has("SAFECOOKIE") && info.has("COOKIE") && !info.has("NULL"));
        assert_eq!(
            info.cookie_file.as_deref(),
            Some(Path::new("/run/tor/control.authcookie"))
        );
        assert_eq!(info.tor_version.as_deref(), Some("0.4.9.11"));
        assert!(ProtocolInfo::parse(&reply(&["250-PROTOCOLINFO 1", "250 OK"])).is_err());
    }

    #[test]
    fn safecookie_checks_tors_proof() {
        let cookie = [7u8; 32];
        let client_nonce = [1u8; 32];
        let server_nonce = [2u8; 32];
        let server_hash = mac(SERVER_KEY, &cookie, &client_nonce, &server_nonce)
            .unwrap()
            .finalize()
            .into_bytes();
        let good = format!(
            "250 AUTHCHALLENGE SERVERHASH={} SERVERNONCE={}",
            data_encoding::HEXUPPER.encode(&server_hash),
            data_encoding::HEXUPPER.encode(&server_nonce)
        );
        let answer = safecookie_response(&reply(&[&good]), &cookie, &client_nonce).unwrap();
        assert_eq!(answer.len(), 64);
        let wrong_cookie = [8u8; 32];
        assert!(safecookie_response(&reply(&[&good]), &wrong_cookie, &client_nonce).is_err());
        assert!(
            safecookie_response(&reply(&["250 AUTHCHALLENGE"]), &cookie, &client_nonce).is_err()
        );
    }
}
