//! What a program asks of the kernel about the network and the file system,
//! recorded by running it under `strace` and read back as [`Call`]s.
//!
//! `strace -f --seccomp-bpf` stops a traced process only on the calls it was
//! asked to trace, so the programs run at nearly their usual speed. With `-y`
//! strace prints the path behind each file descriptor (`AT_FDCWD</cwd>`,
//! `= 11</dir/file>`), which lets relative paths be resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

/// The system calls traced: those that reach the network or leave something in
/// the file system, and those needed to follow processes and their working
/// directories.
pub const TRACED_CALLS: &str = "socket,connect,bind,listen,getsockname,sendto,sendmsg,\
    execve,clone,clone3,fork,vfork,chdir,fchdir,\
    open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,truncate";

/// Why a trace could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The trace file could not be read.
    #[error("could not read the trace {}: {source}", path.display())]
    Read {
        /// The trace file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Where a traced program's calls are written.
#[derive(Debug, Clone)]
pub struct Tracer {
    out: PathBuf,
}

impl Tracer {
    /// A tracer writing to `out` (which should be on a tmpfs when the trace
    /// itself must leave nothing on disk).
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self { out: out.into() }
    }

    /// The trace file.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// A command that runs `program` (with the arguments the caller adds)
    /// under strace, following its children.
    pub fn command(&self, program: impl AsRef<OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new("strace");
        command
            .args(["-f", "-y", "--seccomp-bpf", "-qq", "-e", "signal=none"])
            .arg("-e")
            .arg(format!("trace={TRACED_CALLS}"))
            .arg("-o")
            .arg(&self.out)
            .arg("--")
            .arg(program);
        command
    }

    /// Reads the trace of a program started in `cwd`.
    pub fn read(&self, cwd: &Path) -> Result<Trace, TraceError> {
        let bytes = std::fs::read(&self.out).map_err(|source| TraceError::Read {
            path: self.out.clone(),
            source,
        })?;
        Ok(Trace::parse(&String::from_utf8_lossy(&bytes), cwd))
    }
}

/// A socket address as strace prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// `AF_INET`.
    Inet(SocketAddrV4),
    /// `AF_INET6`: the address as printed, and the port.
    Inet6(String, u16),
    /// `AF_UNIX`: the path (`@name` for the abstract namespace; empty when
    /// unnamed).
    Unix(String),
    /// Any other family, as printed.
    Other(String),
}

/// What one call did, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallKind {
    /// `socket(FAMILY, TYPE|FLAGS, PROTO)`.
    Socket {
        /// `AF_INET`, `AF_UNIX`, ...
        family: String,
        /// `SOCK_STREAM|SOCK_CLOEXEC`, ...
        kind: String,
    },
    /// `connect` to this address.
    Connect(SockAddr),
    /// `bind` to this address.
    Bind(SockAddr),
    /// `listen`.
    Listen,
    /// `getsockname` answered this address.
    SockName(SockAddr),
    /// `sendto` or `sendmsg`, with the destination when one was given.
    Send(Option<SockAddr>),
    /// `execve` of this program.
    Exec(PathBuf),
    /// A new process or thread with this id.
    Spawn(u32),
    /// The working directory changed to this one.
    Chdir(PathBuf),
    /// `open`/`openat`/`creat` of this path with these flags.
    Open {
        /// The path, absolute where it could be resolved.
        path: PathBuf,
        /// `O_WRONLY|O_CREAT|...`.
        flags: String,
    },
    /// A directory made.
    Mkdir(PathBuf),
    /// A rename (also `link`, `symlink`): what is created is `to`.
    Rename {
        /// The source (a symlink's target, as given).
        from: PathBuf,
        /// What now exists.
        to: PathBuf,
    },
    /// `truncate` of this path.
    Truncate(PathBuf),
}

/// One traced call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The process (or thread) that made it.
    pub pid: u32,
    /// What it asked for.
    pub kind: CallKind,
    /// The kernel's answer: a non-negative value, or the error name.
    pub result: Result<i64, String>,
    /// The line strace wrote (both halves joined when it was interrupted).
    pub line: String,
}

impl Call {
    /// Whether the call opens for writing or creates something in the file
    /// system; the path it affects.
    pub fn written_path(&self) -> Option<&Path> {
        match &self.kind {
            CallKind::Open { path, flags } => {
                let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"];
                let writes = flags.split('|').any(|f| writes.contains(&f));
                writes.then_some(path.as_path())
            }
            CallKind::Mkdir(path) | CallKind::Truncate(path) => Some(path),
            CallKind::Rename { to, .. } => Some(to),
            _ => None,
        }
    }
}

/// Every traced call of a program and its descendants, in the order strace
/// wrote them.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The calls.
    pub calls: Vec<Call>,
    /// Each process's parent, where its creation was traced.
    pub parents: BTreeMap<u32, u32>,
}

impl Trace {
    /// Parses strace's output for a program started in `cwd`; lines it does not
    /// understand (exit and signal notes) are skipped.
    pub fn parse(text: &str, cwd: &Path) -> Self {
        let mut pending: BTreeMap<u32, String> = BTreeMap::new();
        let mut joined = Vec::new();
        for line in text.lines() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let rest = rest.trim_start();
            if let Some(head) = rest.strip_suffix("<unfinished ...>") {
                pending.insert(pid, head.trim_end().to_owned());
                continue;
            }
            let whole = match rest.strip_prefix("<... ") {
                Some(resumed) => {
                    let Some((_, tail)) = resumed.split_once(" resumed>") else {
                        continue;
                    };
                    let head = pending.remove(&pid).unwrap_or_default();
                    format!("{head}{tail}")
                }
                None => rest.to_owned(),
            };
            joined.push((pid, whole));
        }
        let raw: Vec<_> = joined
            .iter()
            .filter_map(|(pid, whole)| Some((*pid, split_call(whole)?, format!("{pid} {whole}"))))
            .collect();
        let mut parents = BTreeMap::new();
        for (pid, call, _) in &raw {
            if matches!(call.name, "clone" | "clone3" | "fork" | "vfork")
                && let Ok(child) = call.result
                && let Ok(child) = u32::try_from(child)
            {
                parents.insert(child, *pid);
            }
        }
        let mut cwds = Cwds {
            root: cwd.to_owned(),
            known: BTreeMap::new(),
            parents: &parents,
        };
        let calls = raw
            .iter()
            .filter_map(|(pid, call, line)| {
                let kind = decode(*pid, call, &mut cwds)?;
                Some(Call {
                    pid: *pid,
                    kind,
                    result: call.result.clone(),
                    line: line.clone(),
                })
            })
            .collect();
        Self { calls, parents }
    }

    /// The processes that ran a program named `name` (by `execve`) and their
    /// descendants.
    pub fn pids_running(&self, name: &str) -> BTreeSet<u32> {
        let mut pids: BTreeSet<u32> = self
            .calls
            .iter()
            .filter(|c| {
                matches!(&c.kind, CallKind::Exec(p) if p.file_name() == Some(OsStr::new(name)))
                    && c.result.is_ok()
            })
            .map(|c| c.pid)
            .collect();
        // Parents precede children in no guaranteed order: repeat until stable.
        loop {
            let more: Vec<u32> = self
                .parents
                .iter()
                .filter(|(child, parent)| pids.contains(parent) && !pids.contains(child))
                .map(|(child, _)| *child)
                .collect();
            if more.is_empty() {
                return pids;
            }
            pids.extend(more);
        }
    }

    /// The loopback TCP ports `pids` bound or were given (`getsockname`).
    pub fn bound_ports(&self, pids: &BTreeSet<u32>) -> BTreeSet<u16> {
        self.calls
            .iter()
            .filter(|c| pids.contains(&c.pid) && c.result.is_ok())
            .filter_map(|c| match &c.kind {
                CallKind::Bind(SockAddr::Inet(a)) | CallKind::SockName(SockAddr::Inet(a))
                    if a.ip().is_loopback() && a.port() != 0 =>
                {
                    Some(a.port())
                }
                _ => None,
            })
            .collect()
    }

    /// Every process seen in the trace.
    pub fn pids(&self) -> BTreeSet<u32> {
        self.calls.iter().map(|c| c.pid).collect()
    }

    /// The network calls of `pids` that break the rule for a program that
    /// speaks only to Tor: TCP `connect` only to 127.0.0.1 on one of `ports`
    /// (or to a unix socket), `bind` only to 127.0.0.1 or a unix socket, no
    /// IPv6 or datagram sockets, and no `sendto`/`sendmsg` to an address of
    /// its own choosing.
    pub fn network_violations(&self, pids: &BTreeSet<u32>, ports: &BTreeSet<u16>) -> Vec<&Call> {
        let localhost = Ipv4Addr::LOCALHOST;
        self.calls
            .iter()
            .filter(|c| pids.contains(&c.pid))
            .filter(|c| match &c.kind {
                CallKind::Socket { family, kind } => match family.as_str() {
                    "AF_UNIX" => false,
                    "AF_INET" => !kind.split('|').any(|k| k == "SOCK_STREAM"),
                    _ => true,
                },
                CallKind::Connect(addr) => match addr {
                    SockAddr::Unix(_) => false,
                    SockAddr::Inet(a) => *a.ip() != localhost || !ports.contains(&a.port()),
                    _ => true,
                },
                CallKind::Bind(addr) => match addr {
                    SockAddr::Unix(_) => false,
                    SockAddr::Inet(a) => *a.ip() != localhost,
                    _ => true,
                },
                CallKind::Send(to) => to.is_some(),
                _ => false,
            })
            .collect()
    }
}

/// A call split into its parts, not yet decoded.
struct RawCall<'a> {
    name: &'a str,
    args: Vec<&'a str>,
    result: Result<i64, String>,
    /// The path strace printed after a returned file descriptor.
    result_path: Option<PathBuf>,
}

fn split_call(line: &str) -> Option<RawCall<'_>> {
    let open = line.find('(')?;
    let name = &line[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (args, rest) = split_top_level(&line[open + 1..], ')')?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let value = rest.split_whitespace().next()?;
    let (number, path) = match value.split_once('<') {
        Some((n, _)) => {
            // The path runs to the matching '>' at the end of the token, which
            // may hold spaces: take the rest of the line up to its last '>'.
            let after = &rest[n.len() + 1..];
            let end = after.rfind('>').unwrap_or(after.len());
            (n, Some(unescape_path(&after[..end])))
        }
        None => (value, None),
    };
    let result = match number.parse::<i64>() {
        Ok(n) if n < 0 => Err(rest.split_whitespace().nth(1).unwrap_or("?").to_owned()),
        Ok(n) => Ok(n),
        Err(_) => match number.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).map_err(|_| number.to_owned()),
            None => Err(number.to_owned()),
        },
    };
    Some(RawCall {
        name,
        args,
        result,
        result_path: path,
    })
}

/// Splits `s` at top-level `", "` up to the `close` that ends it; returns the
/// parts and what follows `close`. Quotes, brackets and braces nest.
fn split_top_level(s: &str, close: char) -> Option<(Vec<&str>, &str)> {
    let mut depth = 0usize;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ if c == close && depth == 0 => {
                let last = s[start..i].trim();
                if !last.is_empty() || !parts.is_empty() {
                    parts.push(last);
                }
                return Some((parts, &s[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// The bytes of a C string as strace prints it (quotes optional, `...` after
/// a truncated one ignored), as a path.
fn unescape_path(s: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(s)))
}

fn unescape_str(s: &str) -> String {
    String::from_utf8_lossy(&unescape(s)).into_owned()
}

fn unescape(s: &str) -> Vec<u8> {
    let s = s.trim();
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s
        .strip_suffix("\"...")
        .or_else(|| s.strip_suffix('"'))
        .unwrap_or(s);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = bytes.get(i) else {
            out.push(b);
            break;
        };
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' => {
                let hex = bytes
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(e),
                }
            }
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(value & 0xff).unwrap_or(0));
            }
            other => out.push(other),
        }
    }
    out
}

/// The path printed inside `fd<...>` (`AT_FDCWD</dir>`, `5</dir>`).
fn fd_path(arg: &str) -> Option<PathBuf> {
    let (_, inner) = arg.split_once('<')?;
    let inner = inner.strip_suffix('>')?;
    Some(unescape_path(inner))
}

/// The working directory of each process, as far as the trace shows it.
struct Cwds<'a> {
    root: PathBuf,
    known: BTreeMap<u32, PathBuf>,
    parents: &'a BTreeMap<u32, u32>,
}

impl Cwds<'_> {
    fn of(&self, pid: u32) -> PathBuf {
        let mut at = pid;
        // A parent chain is finite, but guard against a malformed trace's loop.
        for _ in 0..64 {
            if let Some(dir) = self.known.get(&at) {
                return dir.clone();
            }
            match self.parents.get(&at) {
                Some(parent) => at = *parent,
                None => break,
            }
        }
        self.root.clone()
    }

    /// `path` made absolute for `pid`, relative to `dirfd` where given.
    fn resolve(&mut self, pid: u32, dirfd: Option<&str>, path: PathBuf) -> PathBuf {
        if let Some(fd) = dirfd
            && fd.starts_with("AT_FDCWD")
            && let Some(dir) = fd_path(fd)
        {
            self.known.insert(pid, dir);
        }
        if path.is_absolute() {
            return path;
        }
        match dirfd.and_then(fd_path) {
            Some(dir) => dir.join(path),
            None => self.of(pid).join(path),
        }
    }
}

fn decode(pid: u32, call: &RawCall<'_>, cwds: &mut Cwds<'_>) -> Option<CallKind> {
    let arg = |i: usize| call.args.get(i).copied();
    let path = |i: usize| arg(i).map(unescape_path);
    let kind = match call.name {
        "socket" => CallKind::Socket {
            family: arg(0)?.to_owned(),
            kind: arg(1)?.to_owned(),
        },
        "connect" => CallKind::Connect(sockaddr(arg(1)?)),
        "bind" => CallKind::Bind(sockaddr(arg(1)?)),
        "listen" => CallKind::Listen,
        "getsockname" => CallKind::SockName(sockaddr(arg(1)?)),
        "sendto" => CallKind::Send(arg(4).filter(|a| *a != "NULL").map(sockaddr)),
        "sendmsg" => CallKind::Send(msg_name(arg(1)?)),
        "execve" => CallKind::Exec(path(0)?),
        "clone" | "clone3" | "fork" | "vfork" => CallKind::Spawn(
            call.result
                .as_ref()
                .ok()
                .and_then(|n| u32::try_from(*n).ok())?,
        ),
        "chdir" | "fchdir" => {
            let dir = match call.name {
                "chdir" => {
                    let p = path(0)?;
                    cwds.resolve(pid, None, p)
                }
                _ => fd_path(arg(0)?)?,
            };
            if call.result.is_ok() {
                cwds.known.insert(pid, dir.clone());
            }
            CallKind::Chdir(dir)
        }
        "open" | "creat" | "openat" => {
            let (dirfd, p, flags) = match call.name {
                "openat" => (arg(0), path(1)?, arg(2)?),
                "creat" => (None, path(0)?, "O_CREAT|O_WRONLY|O_TRUNC"),
                _ => (None, path(0)?, arg(1)?),
            };
            let resolved = cwds.resolve(pid, dirfd, p);
            // The descriptor's own path is the kernel's word on what was opened.
            let path = call.result_path.clone().unwrap_or(resolved);
            CallKind::Open {
                path,
                flags: flags.to_owned(),
            }
        }
        "mkdir" => CallKind::Mkdir(cwds.resolve(pid, None, path(0)?)),
        "mkdirat" => CallKind::Mkdir(cwds.resolve(pid, arg(0), path(1)?)),
        "truncate" => CallKind::Truncate(cwds.resolve(pid, None, path(0)?)),
        "rename" | "link" => CallKind::Rename {
            from: cwds.resolve(pid, None, path(0)?),
            to: cwds.resolve(pid, None, path(1)?),
        },
        "renameat" | "renameat2" | "linkat" => CallKind::Rename {
            from: cwds.resolve(pid, arg(0), path(1)?),
            to: cwds.resolve(pid, arg(2), path(3)?),
        },
        "symlink" => CallKind::Rename {
            from: path(0)?,
            to: cwds.resolve(pid, None, path(1)?),
        },
        "symlinkat" => CallKind::Rename {
            from: path(0)?,
            to: cwds.resolve(pid, arg(1), path(2)?),
        },
        _ => return None,
    };
    Some(kind)
}

/// `msg_name={...}` of a `struct msghdr`, when set.
fn msg_name(msghdr: &str) -> Option<SockAddr> {
    let inner = msghdr.strip_prefix('{')?;
    let (fields, _) = split_top_level(inner, '}')?;
    let name = fields.iter().find_map(|f| f.strip_prefix("msg_name="))?;
    (name != "NULL").then(|| sockaddr(name))
}

/// A `struct sockaddr` as strace prints it.
fn sockaddr(text: &str) -> SockAddr {
    let other = || SockAddr::Other(text.to_owned());
    let Some((fields, _)) = text.strip_prefix('{').and_then(|t| split_top_level(t, '}')) else {
        return other();
    };
    let field = |key: &str| {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let port = |key: &str| {
        field(key).and_then(|v| {
            v.strip_prefix("htons(")?
                .strip_suffix(')')?
                .parse::<u16>()
                .ok()
        })
    };
    match field("sa_family") {
        Some("AF_INET") => {
            let ip = field("sin_addr")
                .and_then(|v| v.strip_prefix("inet_addr(")?.strip_suffix(')'))
                .and_then(|v| unescape_str(v).parse::<Ipv4Addr>().ok());
            match (ip, port("sin_port")) {
                (Some(ip), Some(port)) => SockAddr::Inet(SocketAddrV4::new(ip, port)),
                _ => other(),
            }
        }
        Some("AF_INET6") => {
            let addr = fields
                .iter()
                .find_map(|f| f.strip_prefix("inet_pton(AF_INET6, "))
                .and_then(|v| v.split(',').next())
                .map(unescape_str)
                .unwrap_or_default();
            SockAddr::Inet6(addr, port("sin6_port").unwrap_or(0))
        }
        Some("AF_UNIX") => {
            let path = field("sun_path").unwrap_or("");
            match path.strip_prefix('@') {
                Some(abstract_name) => SockAddr::Unix(format!("@{}", unescape_str(abstract_name))),
                None => SockAddr::Unix(unescape_str(path)),
            }
        }
        _ => other(),
    }
}

/// Whether `path` is kept in memory: on a tmpfs or ramfs (judged by its
/// nearest existing ancestor, since a file may be gone by the time it is
/// checked), or one of the devices that store nothing.
pub fn kept_in_memory(path: &Path) -> bool {
    const DEVICES: [&str; 6] = [
        "/dev/null",
        "/dev/tty",
        "/dev/zero",
        "/dev/full",
        "/dev/stdout",
        "/dev/stderr",
    ];
    if DEVICES.iter().any(|d| path == Path::new(d)) {
        return true;
    }
    path.ancestors()
        .find(|a| a.exists())
        .is_some_and(nightjar_tor::scratch::is_ram_backed)
}

/// The regular files on the file system of `/` (not below other mounts)
/// modified after `stamp`, except those under `skip`.
pub fn files_changed_since(stamp: &Path, skip: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let output = std::process::Command::new("find")
        .args(["/", "-xdev", "-newer"])
        .arg(stamp)
        .args(["-type", "f", "-print0"])
        .stderr(std::process::Stdio::null())
        .output()?;
    // find also reports files that vanished while it ran; the list is still
    // whole, so its exit status is not a verdict.
    Ok(output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(OsString::from_vec(p.to_vec())))
        .filter(|p| !skip.iter().any(|s| p.starts_with(s)))
        .collect())
}

/// Whether the file at `path` holds `needle`; a file that cannot be read
/// (gone since, or not a file any more) does not.
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| memchr::memmem::find(&bytes, needle).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes))
    }

    /// Lines strace 6.1 wrote for a small program that exercised each call
    /// (`strace -f -y --seccomp-bpf -qq -e signal=none -e trace=...`).
    const CAPTURED: &str = r#"21634 bind(3<socket:[1327764]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
21634 listen(3<socket:[1327764]>, 128)  = 0
21634 getsockname(3<socket:[1327764]>, {sa_family=AF_INET, sin_port=htons(60467), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0
21634 connect(4<socket:[1327765]>, {sa_family=AF_INET, sin_port=htons(60467), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
21634 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 5<socket:[1327766]>
21634 connect(5<socket:[1327766]>, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ECONNREFUSED (Connection refused)
21634 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 6<socket:[1327768]>
21634 sendto(6<socket:[1327768]>, "hello", 5, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.2")}, 16) = 5
21634 connect(7<socket:[1327773]>, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0
21634 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 7<socket:[1327774]>
21634 bind(7<socket:[1327774]>, {sa_family=AF_UNIX, sun_path="/dev/shm/probe/a.sock"}, 24) = 0
21634 connect(8<socket:[1327775]>, {sa_family=AF_UNIX, sun_path="/dev/shm/probe/a.sock"}, 24) = 0
21634 sendto(8<socket:[1327775]>, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"..., 100, 0, NULL, 0) = 100
21634 sendmsg(9<socket:[1327777]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="hi", iov_len=2}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 2
21634 openat(AT_FDCWD</dev/shm/probe>, "/dev/shm/probe/f.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 11</dev/shm/probe/f.txt>
21634 openat(AT_FDCWD</dev/shm/probe>, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 12</etc/hosts>
21634 openat(AT_FDCWD</dev/shm/probe>, "/etc/missing", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
21634 rename("/dev/shm/probe/f.txt", "/dev/shm/probe/g.txt") = 0
21634 mkdir("/dev/shm/probe/d", 0777)   = 0
21634 symlink("g.txt", "/dev/shm/probe/l") = 0
21634 link("g.txt", "h.txt")            = 0
21634 truncate("g.txt", 0)              = 0
21634 openat(AT_FDCWD</dev/shm/probe>, "x y\"\n.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600) = 11</dev/shm/probe/x y\"\n.txt>
21634 vfork( <unfinished ...>
21682 execve("/usr/bin/true", ["true"], 0x7ffecbe221c0 /* 38 vars */ <unfinished ...>
21634 <... vfork resumed>)              = 21682
21682 <... execve resumed>)             = 0
21682 openat(AT_FDCWD</dev/shm/probe>, "out", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3</dev/shm/probe/out>
21682 +++ exited with 0 +++
"#;

    fn captured() -> Trace {
        Trace::parse(CAPTURED, Path::new("/dev/shm/probe"))
    }

    fn inet(ip: [u8; 4], port: u16) -> SockAddr {
        SockAddr::Inet(SocketAddrV4::new(Ipv4Addr::from(ip), port))
    }

    #[test]
    fn socket_calls_are_decoded() {
        let trace = captured();
        let kinds: Vec<_> = trace.calls.iter().map(|c| &c.kind).collect();
        assert_eq!(kinds[0], &CallKind::Bind(inet([127, 0, 0, 1], 0)));
        assert_eq!(kinds[1], &CallKind::Listen);
        assert_eq!(kinds[2], &CallKind::SockName(inet([127, 0, 0, 1], 60467)));
        assert_eq!(kinds[3], &CallKind::Connect(inet([127, 0, 0, 1], 60467)));
        assert_eq!(
            kinds[4],
            &CallKind::Socket {
                family: "AF_INET6".into(),
                kind: "SOCK_STREAM|SOCK_CLOEXEC".into()
            }
        );
        assert_eq!(
            kinds[5],
            &CallKind::Connect(SockAddr::Inet6("::1".into(), 9))
        );
        assert_eq!(trace.calls[5].result, Err("ECONNREFUSED".into()));
        assert_eq!(kinds[7], &CallKind::Send(Some(inet([127, 0, 0, 2], 53))));
        assert_eq!(trace.calls[7].result, Ok(5));
        assert_eq!(
            kinds[10],
            &CallKind::Bind(SockAddr::Unix("/dev/shm/probe/a.sock".into()))
        );
        assert_eq!(kinds[12], &CallKind::Send(None));
        assert_eq!(kinds[13], &CallKind::Send(None));
        assert_eq!(trace.calls[0].pid, 21634);
        assert!(trace.calls[7].line.contains("sendto(6<socket:[1327768]>"));
    }

    #[test]
    fn paths_are_decoded_and_made_absolute() {
        let trace = captured();
        let written: Vec<_> = trace
            .calls
            .iter()
            .filter_map(Call::written_path)
            .map(Path::to_owned)
            .collect();
        let odd = path_from_bytes(b"/dev/shm/probe/x y\"\n.txt".to_vec());
        let expected: Vec<PathBuf> = [
            "/dev/shm/probe/f.txt",
            "/dev/shm/probe/g.txt",
            "/dev/shm/probe/d",
            "/dev/shm/probe/l",
            "/dev/shm/probe/h.txt",
            "/dev/shm/probe/g.txt",
        ]
        .iter()
        .map(PathBuf::from)
        .chain([odd, PathBuf::from("/dev/shm/probe/out")])
        .collect();
        assert_eq!(written, expected);
        let failed = trace
            .calls
            .iter()
            .find(|c| c.result.is_err() && matches!(c.kind, CallKind::Open { .. }))
            .unwrap();
        assert_eq!(failed.result, Err("ENOENT".into()));
    }

    #[test]
    fn interrupted_calls_are_joined_and_children_followed() {
        let trace = captured();
        assert_eq!(trace.parents.get(&21682), Some(&21634));
        let exec = trace.calls.iter().find(|c| c.pid == 21682).unwrap();
        assert_eq!(exec.kind, CallKind::Exec(PathBuf::from("/usr/bin/true")));
        assert_eq!(exec.result, Ok(0));
        assert!(
            exec.line.ends_with("/* 38 vars */)             = 0"),
            "{}",
            exec.line
        );
        assert_eq!(trace.pids_running("true"), BTreeSet::from([21682]));
        assert!(trace.pids_running("tor").is_empty());
    }

    #[test]
    fn the_network_rule_names_each_offence() {
        let trace = captured();
        let pids = trace.pids();
        let ports = trace.bound_ports(&pids);
        assert_eq!(ports, BTreeSet::from([60467]));
        let offences: Vec<_> = trace
            .network_violations(&pids, &ports)
            .iter()
            .map(|c| c.line.split('(').next().unwrap().to_owned())
            .collect();
        // The IPv6 socket and connect, the UDP socket and its sendto, the
        // connect to a resolver.
        assert_eq!(
            offences,
            [
                "21634 socket",
                "21634 connect",
                "21634 socket",
                "21634 sendto",
                "21634 connect"
            ]
        );
        // Without the port the program bound, its own connect offends too.
        assert_eq!(trace.network_violations(&pids, &BTreeSet::new()).len(), 6);
    }

    #[test]
    fn relative_paths_follow_chdir_and_dirfds() {
        let text = "7 chdir(\"/dev/shm/a\") = 0\n\
                    7 clone3({flags=CLONE_VM, exit_signal=SIGCHLD}, 88) = 8\n\
                    8 mkdir(\"sub\", 0700) = 0\n\
                    8 renameat2(5</dev/shm/b>, \"x.tmp\", AT_FDCWD</dev/shm/c>, \"x\", RENAME_NOREPLACE) = 0\n\
                    9 mkdir(\"elsewhere\", 0700) = 0\n\
                    8 openat(4</dev/shm/d>, \"\\303\\251t\\xe9\", O_RDWR|O_CREAT, 0600) = -1 EACCES (Permission denied)\n";
        let trace = Trace::parse(text, Path::new("/start"));
        let written: Vec<_> = trace.calls.iter().filter_map(Call::written_path).collect();
        assert_eq!(
            written,
            [
                Path::new("/dev/shm/a/sub"),
                Path::new("/dev/shm/c/x"),
                Path::new("/start/elsewhere"),
                &path_from_bytes(b"/dev/shm/d/\xc3\xa9t\xe9".to_vec()),
            ]
        );
    }

    #[test]
    fn memory_is_told_from_disk() {
        assert!(kept_in_memory(Path::new("/dev/shm/no/such/file")));
        assert!(kept_in_memory(Path::new("/dev/null")));
        assert!(!kept_in_memory(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("new-file")
        ));
    }

    #[test]
    fn a_marker_written_to_disk_is_found() {
        // Beside the sources: on the root file system wherever nightjar is built
        // from a checkout on it.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let stamp = dir.path().join("stamp");
        std::fs::write(&stamp, b"").unwrap();
        let before = std::fs::metadata(&stamp).unwrap().modified().unwrap();
        // The stamp's times have a granularity: wait until a later write is
        // surely newer.
        let file = dir.path().join("written");
        loop {
            std::fs::write(&file, b"..marker-7f3a..").unwrap();
            if std::fs::metadata(&file).unwrap().modified().unwrap() > before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let changed = files_changed_since(&stamp, &[]).unwrap();
        assert!(changed.contains(&file), "{changed:?}");
        assert!(file_contains(&file, b"marker-7f3a"));
        assert!(!file_contains(&file, b"marker-7f3b"));
        let skipped = files_changed_since(&stamp, &[dir.path().to_owned()]).unwrap();
        assert!(!skipped.contains(&file));
    }

    #[test]
    fn the_command_runs_under_strace() {
        let command = Tracer::new("/dev/shm/t.txt").command("nightjar");
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(command.get_program(), "strace");
        assert!(args.contains(&format!("trace={TRACED_CALLS}")));
        assert_eq!(
            &args[args.len() - 4..],
            ["-o", "/dev/shm/t.txt", "--", "nightjar"]
        );
    }
}
