//! What a running private network looks like from outside: everything a client (C
//! tor or Arti) needs to join it, written to `network.json` in the network's
//! directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One tor of the private network, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The tor's nickname (`auth0`, `relay3`, ...).
    pub nickname: String,
    /// The RSA identity fingerprint, 40 upper-case hex digits.
    pub rsa_identity: String,
    /// The Ed25519 identity, unpadded base64 as tor prints it.
    pub ed25519_identity: String,
    /// Always 127.0.0.1: the network never leaves loopback.
    pub address: String,
    /// Where the tor accepts OR connections.
    pub or_port: u16,
    /// Where the tor serves directory documents over plain HTTP.
    pub dir_port: u16,
}

impl NodeInfo {
    /// `127.0.0.1:ORPORT`.
    pub fn or_addr(&self) -> String {
        format!("{}:{}", self.address, self.or_port)
    }

    /// `127.0.0.1:DIRPORT`.
    pub fn dir_addr(&self) -> String {
        format!("{}:{}", self.address, self.dir_port)
    }
}

/// A directory authority: a node plus the identity its votes are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityInfo {
    /// The authority as a relay.
    #[serde(flatten)]
    pub node: NodeInfo,
    /// The v3 authority identity (fingerprint of its `authority_identity_key`), 40
    /// upper-case hex digits; clients trust consensuses signed by these.
    pub v3_identity: String,
}

impl AuthorityInfo {
    /// The `DirAuthority` torrc line that makes a C tor trust this authority.
    pub fn dir_authority_line(&self) -> String {
        format!(
            "DirAuthority {} orport={} no-v2 v3ident={} {} {}",
            self.node.nickname,
            self.node.or_port,
            self.v3_identity,
            self.node.dir_addr(),
            self.node.rsa_identity
        )
    }
}

/// Everything needed to join a running private network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDescription {
    /// The directory the network lives in (torrcs, logs, keys, pid files).
    pub dir: PathBuf,
    /// `V3AuthVotingInterval`, seconds: a new consensus this often.
    pub voting_interval_secs: u64,
    /// The onion-service time period (`hsdir_interval` in Arti's configuration),
    /// seconds. Tor derives it from the voting interval on test networks (24
    /// rounds); an Arti client configured with another value never finds the
    /// services' descriptors.
    pub hsdir_interval_secs: u64,
    /// The directory authorities.
    pub authorities: Vec<AuthorityInfo>,
    /// The non-authority relays (all are guards, exits to 127.0.0.0/8 only, and
    /// HSDirs).
    pub relays: Vec<NodeInfo>,
    /// The C tor client configuration lines for this network (`DirAuthority` and
    /// the testing options), one per entry.
    pub client_torrc: Vec<String>,
    /// Milliseconds from starting the tors until a consensus listing all of them was
    /// served.
    pub consensus_after_ms: u64,
}

impl NetworkDescription {
    /// How long from `now` until the network's onion-service time period turns.
    /// Periods start half a period after each multiple of the period in Unix
    /// time, as tor lays them out. At each turn services publish for the new
    /// period and clients look them up there; on a test network that happens
    /// every few minutes (on the public network once a day), and for a while
    /// around it a service can be hard to reach, most of all one hosted by Arti.
    pub fn until_period_turn(&self, now: std::time::SystemTime) -> std::time::Duration {
        let length = self.hsdir_interval_secs.max(1);
        let offset = length / 2;
        let since_epoch = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let into = (since_epoch + length - offset % length) % length;
        std::time::Duration::from_secs(length - into)
    }

    /// The file name of the description inside the network's directory.
    pub const FILE: &'static str = "network.json";
    /// The file holding [`NetworkDescription::client_torrc`], one option a line.
    pub const CLIENT_TORRC: &'static str = "client.torrc";
    /// Shell assignments (`eval "$(nightjar testnet env)"`).
    pub const ENV_FILE: &'static str = "env";
    /// The variable naming a running network's directory; tests attach to it
    /// instead of starting their own when it is set.
    pub const ENV_VAR: &'static str = "NIGHTJAR_TESTNET";

    /// Every node that serves directory documents, authorities first: Arti's
    /// `fallback_caches`. During the network's first minute only the
    /// authorities are sure to hold the current consensus and microdescriptors
    /// (the network counts as up once they do); relays catch up within about a
    /// minute.
    pub fn fallback_caches(&self) -> impl Iterator<Item = &NodeInfo> {
        self.authorities
            .iter()
            .map(|a| &a.node)
            .chain(self.relays.iter())
    }

    /// Number of tors in the network.
    pub fn node_count(&self) -> usize {
        self.authorities.len() + self.relays.len()
    }

    /// Path of `network.json`.
    pub fn json_path(&self) -> PathBuf {
        self.dir.join(Self::FILE)
    }

    /// Path of `client.torrc`.
    pub fn client_torrc_path(&self) -> PathBuf {
        self.dir.join(Self::CLIENT_TORRC)
    }

    /// Reads `network.json` from a network directory.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir.join(Self::FILE))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// The contents of the `env` file.
    pub fn env_text(&self) -> String {
        let mut out = String::new();
        out.push_str("# nightjar private Tor network (loopback only)\n");
        let vars = [
            (Self::ENV_VAR, self.dir.clone()),
            ("NIGHTJAR_TESTNET_JSON", self.json_path()),
            ("NIGHTJAR_TESTNET_TORRC", self.client_torrc_path()),
        ];
        for (name, path) in vars {
            out.push_str(&format!(
                "{name}={}\n",
                shell_quote(&path.to_string_lossy())
            ));
            out.push_str(&format!("export {name}\n"));
        }
        out.push_str(&format!(
            "# voting interval {} s, hsdir interval {} s, {} authorities, {} relays\n",
            self.voting_interval_secs,
            self.hsdir_interval_secs,
            self.authorities.len(),
            self.relays.len()
        ));
        for line in &self.client_torrc {
            out.push_str(&format!("# {line}\n"));
        }
        out
    }

    /// Writes `network.json`, `client.torrc` and `env`.
    pub(crate) fn write_files(&self) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(self.json_path(), json + "\n")?;
        let mut torrc = self.client_torrc.join("\n");
        torrc.push('\n');
        std::fs::write(self.client_torrc_path(), torrc)?;
        std::fs::write(self.dir.join(Self::ENV_FILE), self.env_text())
    }
}

/// The client options for a network with these authorities.
pub(crate) fn client_torrc_lines(authorities: &[AuthorityInfo]) -> Vec<String> {
    let mut lines: Vec<String> = authorities
        .iter()
        .map(AuthorityInfo::dir_authority_line)
        .collect();
    // TestingTorNetwork lets clients use private addresses, build paths within
    // one /16 and download directory documents without the public network's
    // delays; it is refused unless the authorities are set, as above.
    lines.push("TestingTorNetwork 1".to_owned());
    // A few relays are missing microdescriptors right after a consensus; build
    // circuits anyway.
    lines.push("PathsNeededToBuildCircuits 0.67".to_owned());
    // Fetch directory documents from the authorities, like a cache would:
    // relays' caches lag by up to a minute on a young network, and a client
    // that asks one of those first backs off for tens of seconds.
    lines.push("FetchDirInfoEarly 1".to_owned());
    lines
}

/// Single-quotes a word for POSIX shells.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> AuthorityInfo {
        AuthorityInfo {
            node: NodeInfo {
                nickname: "auth0".into(),
                rsa_identity: "216A7FE6E8A3262B977B4885913AD15287FA1037".into(),
                ed25519_identity: "hkYxltLFRIWC6zYf174ZwU6tpS/4piZ7w76bYcdp8rM".into(),
                address: "127.0.0.1".into(),
                or_port: 5000,
                dir_port: 7000,
            },
            v3_identity: "F828C6DED10BB3D2AB9DB4CBBDE3E24C3CEB0BD3".into(),
        }
    }

    #[test]
    fn periods_turn_half_a_period_after_each_multiple() {
        use std::time::{Duration, UNIX_EPOCH};
        let d = NetworkDescription {
            dir: PathBuf::new(),
            voting_interval_secs: 20,
            hsdir_interval_secs: 480,
            authorities: Vec::new(),
            relays: Vec::new(),
            client_torrc: Vec::new(),
            consensus_after_ms: 0,
        };
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        // A turn at 240 s past each multiple of 480 s.
        assert_eq!(
            d.until_period_turn(at(480 * 1000)),
            Duration::from_secs(240)
        );
        assert_eq!(
            d.until_period_turn(at(480 * 1000 + 239)),
            Duration::from_secs(1)
        );
        assert_eq!(
            d.until_period_turn(at(480 * 1000 + 240)),
            Duration::from_secs(480)
        );
        assert_eq!(
            d.until_period_turn(at(480 * 1000 + 241)),
            Duration::from_secs(479)
        );
    }

    #[test]
    fn dir_authority_line_has_tors_syntax() {
        assert_eq!(
            authority().dir_authority_line(),
            "DirAuthority auth0 orport=5000 no-v2 \
             v3ident=F828C6DED10BB3D2AB9DB4CBBDE3E24C3CEB0BD3 127.0.0.1:7000 \
             216A7FE6E8A3262B977B4885913AD15287FA1037"
        );
    }

    #[test]
    fn json_round_trip_and_env() {
        let d = NetworkDescription {
            dir: PathBuf::from("/tmp/it's here"),
            voting_interval_secs: 20,
            hsdir_interval_secs: 480,
            authorities: vec![authority()],
            relays: vec![authority().node],
            client_torrc: client_torrc_lines(&[authority()]),
            consensus_after_ms: 21_500,
        };
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"v3_identity\""));
        assert!(json.contains("\"or_port\":5000"));
        assert_eq!(
            serde_json::from_str::<NetworkDescription>(&json).unwrap(),
            d
        );
        assert!(
            d.env_text()
                .contains("NIGHTJAR_TESTNET='/tmp/it'\\''s here'\n")
        );
        assert_eq!(d.fallback_caches().count(), 2);
    }
}
