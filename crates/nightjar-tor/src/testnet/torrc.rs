//! torrc files for the authorities and relays of the private network.

use std::path::Path;

/// What a node's torrc depends on.
pub(super) struct NodeTorrc<'a> {
    pub nickname: &'a str,
    pub data_dir: &'a Path,
    pub or_port: u16,
    pub dir_port: u16,
    pub authority: bool,
    /// Every authority's `DirAuthority` line.
    pub dir_authorities: &'a [String],
    pub voting_interval_secs: u64,
    /// `__OwningControllerProcess`: tor exits when this process does.
    pub owner_pid: Option<u32>,
}

impl NodeTorrc<'_> {
    pub(super) fn render(&self) -> String {
        let dir = self.data_dir.display();
        let mut t = String::new();
        let mut line = |s: String| {
            t.push_str(&s);
            t.push('\n');
        };
        line("TestingTorNetwork 1".into());
        line(format!("Nickname {}", self.nickname));
        line(format!("DataDirectory {dir}"));
        line(format!("PidFile {dir}/pid"));
        line(format!("Log notice file {dir}/notice.log"));
        line("RunAsDaemon 0".into());
        line("ShutdownWaitLength 0".into());
        line("ContactInfo nightjar-testnet@localhost".into());
        // Relays and authorities never act as clients here; without this tor
        // opens the default SOCKS port 9050 and every second node fails to start.
        line("SocksPort 0".into());
        line("ControlPort 0".into());
        line("Address 127.0.0.1".into());
        line(format!("ORPort 127.0.0.1:{}", self.or_port));
        line(format!("DirPort 127.0.0.1:{}", self.dir_port));
        line("AssumeReachable 1".into());
        line("AuthDirMaxServersPerAddr 0".into());
        for da in self.dir_authorities {
            line(da.clone());
        }
        let vi = self.voting_interval_secs;
        line(format!("V3AuthVotingInterval {vi}"));
        line("V3AuthVoteDelay 4".into());
        line("V3AuthDistDelay 4".into());
        line(format!("TestingV3AuthInitialVotingInterval {vi}"));
        line("TestingV3AuthInitialVoteDelay 4".into());
        line("TestingV3AuthInitialDistDelay 4".into());
        line("V3AuthNIntervalsValid 2".into());
        line("TestingDirAuthVoteExit *".into());
        line("TestingDirAuthVoteHSDir *".into());
        line("TestingDirAuthVoteGuard *".into());
        line("TestingMinExitFlagThreshold 0".into());
        line("PathsNeededToBuildCircuits 0.67".into());
        // Caches fetch each new consensus (and its microdescriptors) at the
        // start of its period rather than at a random later time, so clients of
        // a young network find everything on whichever cache they ask.
        line("FetchDirInfoEarly 1".into());
        line("FetchDirInfoExtraEarly 1".into());
        // Exits reach loopback and nothing else: the trailing reject keeps tor
        // from appending its default (public Internet) policy.
        line("ExitRelay 1".into());
        line("ExitPolicy accept 127.0.0.0/8:*,reject *:*".into());
        line("ExitPolicyRejectPrivate 0".into());
        line("IPv6Exit 0".into());
        // An exit probes DNS at start (hijacking checks against public names);
        // point it at loopback and switch the probes off so no packet leaves.
        line("ServerDNSDetectHijacking 0".into());
        line(format!("ServerDNSResolvConfFile {dir}/resolv.conf"));
        line("ServerDNSAllowBrokenConfig 1".into());
        if self.authority {
            line("AuthoritativeDirectory 1".into());
            line("V3AuthoritativeDirectory 1".into());
            // Every node must be Fast and Stable from the first consensus on:
            // onion-service circuits want both, and on a network this young the
            // usual thresholds (median uptime, the slowest eighth by observed
            // bandwidth) leave a random few out for many minutes.
            line("AuthDirVoteStableGuaranteeMinUptime 0".into());
            line("AuthDirVoteStableGuaranteeMTBF 0".into());
            line("AuthDirFastGuarantee 1".into());
        }
        if let Some(pid) = self.owner_pid {
            line(format!("__OwningControllerProcess {pid}"));
        }
        t
    }
}

/// The resolver file exits are pointed at.
pub(super) const RESOLV_CONF: &str = "nameserver 127.0.0.1\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_torrc_has_the_settings_that_matter() {
        let das = vec!["DirAuthority a orport=1 no-v2 v3ident=AA 127.0.0.1:2 BB".to_owned()];
        let t = NodeTorrc {
            nickname: "auth0",
            data_dir: Path::new("/tmp/x/auth0"),
            or_port: 5000,
            dir_port: 7000,
            authority: true,
            dir_authorities: &das,
            voting_interval_secs: 20,
            owner_pid: Some(42),
        }
        .render();
        for expected in [
            "SocksPort 0\n",
            "ORPort 127.0.0.1:5000\n",
            "DirPort 127.0.0.1:7000\n",
            "V3AuthoritativeDirectory 1\n",
            "TestingV3AuthInitialVotingInterval 20\n",
            "ExitPolicy accept 127.0.0.0/8:*,reject *:*\n",
            "__OwningControllerProcess 42\n",
            &das[0],
        ] {
            assert!(t.contains(expected), "missing {expected:?} in\n{t}");
        }
    }
}
