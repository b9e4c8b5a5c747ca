//! Reading `/proc` for the benches: CPU ticks per thread or process, and which
//! connections belong to whom. Included by each bench with `#[path]`.

/// The local ports of a process's TCP connections to `remote_port`; `process` is a pid
/// or `self`, as under `/proc`. Tells which PostgreSQL backends serve the process.
pub fn local_ports_to(process: &str, remote_port: u16) -> Vec<u16> {
    let inodes: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{process}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{process}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(inode)) =
                (fields.get(1), fields.get(2), fields.get(9))
            else {
                continue;
            };
            let ours = inode
                .parse::<u64>()
                .is_ok_and(|inode| inodes.contains(&inode));
            if ours && port_of(remote) == Some(remote_port) {
                ports.extend(port_of(local));
            }
        }
    }
    ports
}

/// The command name and utime + stime (in clock ticks) of a `/proc/…/stat` line.
pub fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // The fields after the command name start at field 3 (state), so utime (14) and
    // stime (15) are the 12th and 13th of them.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}
