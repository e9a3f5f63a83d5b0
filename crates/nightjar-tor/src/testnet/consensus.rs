//! Asking an authority what the current consensus holds, over plain HTTP on
//! loopback.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The flags a relay needs before we call the network ready: onion-service
/// introduction circuits want Stable relays, every circuit wants Fast ones, and
/// descriptors go to HSDirs.
const NEEDED: [&str; 5] = ["Running", "Valid", "Fast", "Stable", "HSDir"];

/// What a consensus says about the relays in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ConsensusSummary {
    /// Relays listed.
    pub relays: usize,
    /// Relays with all the [`NEEDED`] flags.
    pub usable: usize,
    /// Relays with the Exit flag.
    pub exits: usize,
    /// How many relays lack each needed flag.
    pub missing: BTreeMap<&'static str, usize>,
}

impl fmt::Display for ConsensusSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} relays, {} usable, {} exits",
            self.relays, self.usable, self.exits
        )?;
        for (flag, n) in &self.missing {
            write!(f, ", {n} without {flag}")?;
        }
        Ok(())
    }
}

/// Where a directory serves the microdescriptor consensus (the one clients use).
const CONSENSUS: &str = "/tor/status-vote/current/consensus-microdesc";

/// Fetches the microdescriptor consensus from a dirport. `None` while there is
/// none yet (tor answers 404 before the first vote).
pub(super) fn fetch(dir_port: u16) -> std::io::Result<Option<String>> {
    get(dir_port, CONSENSUS)
}

/// `GET path` from the dirport on loopback; `None` unless the answer is 200.
fn get(dir_port: u16, path: &str) -> std::io::Result<Option<String>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], dir_port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    let text = String::from_utf8_lossy(&body);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Ok(None);
    };
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Ok(None);
    }
    Ok(Some(body.to_owned()))
}

/// The microdescriptor digests a consensus lists (its `m` lines).
pub(super) fn microdesc_digests(consensus: &str) -> Vec<&str> {
    consensus
        .lines()
        .filter_map(|l| l.strip_prefix("m "))
        .map(str::trim)
        .collect()
}

/// True once the directory cache at `dir_port` serves a consensus and every
/// microdescriptor in `digests`. Clients bootstrap from caches; one that lacks
/// microdescriptors makes them back off for tens of seconds, which is what
/// slowed clients down on a network that had only just published its first
/// consensus.
pub(super) fn cache_ready(dir_port: u16, digests: &[&str]) -> bool {
    if !matches!(get(dir_port, CONSENSUS), Ok(Some(_))) {
        return false;
    }
    let path = format!("/tor/micro/d/{}", digests.join("-"));
    match get(dir_port, &path) {
        Ok(Some(body)) => body.lines().filter(|l| *l == "onion-key").count() >= digests.len(),
        _ => false,
    }
}

/// Counts the relays of a consensus document.
pub(super) fn summarize(consensus: &str) -> ConsensusSummary {
    let mut sum = ConsensusSummary::default();
    for line in consensus.lines() {
        if line.starts_with("r ") {
            sum.relays += 1;
        } else if let Some(flags) = line.strip_prefix("s ") {
            let flags: Vec<&str> = flags.split(' ').collect();
            let has = |f: &str| flags.contains(&f);
            let mut usable = true;
            for flag in NEEDED {
                if !has(flag) {
                    usable = false;
                    *sum.missing.entry(flag).or_default() += 1;
                }
            }
            if usable {
                sum.usable += 1;
            }
            if has("Exit") {
                sum.exits += 1;
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    // Abridged from a consensus of this network.
    const DOC: &str = "network-status-version 3 microdesc\n\
        vote-status consensus\n\
        r auth0 ABCD 2026-11-23 11:50:01 127.0.0.1 40001 0\n\
        m sha256digest\n\
        s Authority Exit Fast Guard HSDir Running Stable V2Dir Valid\n\
        r relay0 EFGH 2026-11-23 11:50:02 127.0.0.1 40003 0\n\
        m sha256digest\n\
        s Exit Fast Guard HSDir Running Stable V2Dir Valid\n\
        r relay1 IJKL 2026-11-23 11:50:02 127.0.0.1 40005 0\n\
        s Fast Running Valid\n\
        directory-footer\n";

    #[test]
    fn microdescriptor_digests() {
        assert_eq!(microdesc_digests(DOC), ["sha256digest", "sha256digest"]);
    }

    #[test]
    fn counts_relays_and_flags() {
        assert_eq!(
            summarize(DOC),
            ConsensusSummary {
                relays: 3,
                usable: 2,
                exits: 2,
                missing: [("HSDir", 1), ("Stable", 1)].into_iter().collect(),
            }
        );
        assert_eq!(
            summarize(DOC).to_string(),
            "3 relays, 2 usable, 2 exits, 1 without HSDir, 1 without Stable"
        );
    }
}
