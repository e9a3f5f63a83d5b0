//! Identity keys of the private network's tors, made with tor's own tools.

use std::path::Path;
use std::process::{Command, Stdio};

use super::TestnetError;

/// Creates an authority's v3 identity key and signing certificate in
/// `data_dir/keys` and returns the v3 identity fingerprint.
pub(super) fn make_authority_keys(
    tor_gencert: &Path,
    data_dir: &Path,
    dir_port: u16,
) -> Result<String, TestnetError> {
    let keys = data_dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| TestnetError::io("creating a keys directory", e))?;
    let mut child = Command::new(tor_gencert)
        .arg("--create-identity-key")
        // The identity key stays unencrypted: this network exists for tests.
        .args(["--passphrase-fd", "0"])
        .args(["-m", "12"])
        .args(["-a", &format!("127.0.0.1:{dir_port}")])
        .arg("-i")
        .arg(keys.join("authority_identity_key"))
        .arg("-s")
        .arg(keys.join("authority_signing_key"))
        .arg("-c")
        .arg(keys.join("authority_certificate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestnetError::spawn(tor_gencert, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(b"\n")
            .map_err(|e| TestnetError::io("writing tor-gencert's passphrase", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| TestnetError::io("running tor-gencert", e))?;
    if !out.status.success() {
        return Err(TestnetError::Tool {
            tool: "tor-gencert".into(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let cert = std::fs::read_to_string(keys.join("authority_certificate"))
        .map_err(|e| TestnetError::io("reading the authority certificate", e))?;
    parse_cert_fingerprint(&cert).ok_or_else(|| TestnetError::Tool {
        tool: "tor-gencert".into(),
        output: "the authority certificate has no fingerprint line".into(),
    })
}

/// Has tor create a relay's identity keys in `data_dir` and returns its RSA and
/// Ed25519 identities.
pub(super) fn make_relay_keys(
    tor: &Path,
    data_dir: &Path,
) -> Result<(String, String), TestnetError> {
    let out = Command::new(tor)
        .args(["--quiet", "--ignore-missing-torrc", "--list-fingerprint"])
        .args(["-f", "/dev/null", "--defaults-torrc", "/dev/null"])
        .args(["--ORPort", "1", "--SocksPort", "0"])
        .arg("--DataDirectory")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestnetError::spawn(tor, e))?;
    if !out.status.success() {
        return Err(TestnetError::Tool {
            tool: "tor --list-fingerprint".into(),
            output: String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        });
    }
    let read = |name: &str| {
        std::fs::read_to_string(data_dir.join(name))
            .map_err(|e| TestnetError::io("reading a relay fingerprint", e))
    };
    let rsa = second_word(&read("fingerprint")?);
    let ed = second_word(&read("fingerprint-ed25519")?);
    match (rsa, ed) {
        (Some(rsa), Some(ed)) => Ok((rsa, ed)),
        _ => Err(TestnetError::Tool {
            tool: "tor --list-fingerprint".into(),
            output: "unexpected fingerprint file format".into(),
        }),
    }
}

/// `fingerprint HEX` from an authority certificate.
fn parse_cert_fingerprint(cert: &str) -> Option<String> {
    cert.lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .map(|f| f.trim().to_owned())
        .filter(|f| f.len() == 40 && f.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// tor's fingerprint files hold `Nickname FINGERPRINT`.
fn second_word(s: &str) -> Option<String> {
    s.split_whitespace().nth(1).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_from_tors_files() {
        let cert = "dir-key-certificate-version 3\ndir-address 127.0.0.1:7000\n\
                    fingerprint F828C6DED10BB3D2AB9DB4CBBDE3E24C3CEB0BD3\n";
        assert_eq!(
            parse_cert_fingerprint(cert).as_deref(),
            Some("F828C6DED10BB3D2AB9DB4CBBDE3E24C3CEB0BD3")
        );
        assert_eq!(parse_cert_fingerprint("fingerprint XYZ\n"), None);
        assert_eq!(
            second_word("Unnamed 216A7FE6E8A3262B977B4885913AD15287FA1037\n").as_deref(),
            Some("216A7FE6E8A3262B977B4885913AD15287FA1037")
        );
    }
}
