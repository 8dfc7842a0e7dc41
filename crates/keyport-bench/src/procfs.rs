//! What `/proc` says about a process: CPU time, to show how a load step split
//! the machine's cores between the server and the load generator, resident
//! memory, and open file descriptors.

use std::time::Instant;

use crate::BoxError;

/// Clock ticks per second of `/proc/PID/stat` times: `USER_HZ`, which Linux
/// fixes at 100 in its user-space ABI on every mainstream architecture.
const USER_HZ: f64 = 100.0;

/// Whose CPU time to read: the server, the benchmark itself, or the whole machine.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Process {
    /// This process.
    Bench,
    /// Another process, by id.
    Pid(u32),
    /// Every process on the machine (busy time of all CPUs from `/proc/stat`).
    All,
}

/// CPU time (user + system, all threads) used by a process so far, at an instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuSample {
    seconds: f64,
    at: Instant,
}

impl CpuSample {
    /// Reads the CPU time `process` has used so far.
    pub(crate) fn take(process: Process) -> Result<Self, BoxError> {
        let path = match process {
            Process::Bench => "/proc/self/stat".to_owned(),
            Process::Pid(pid) => format!("/proc/{pid}/stat"),
            Process::All => return Self::take_machine(),
        };
        let stat = std::fs::read_to_string(&path)?;
        // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("malformed /proc/PID/stat")?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime) of stat(5); `after_name` starts at field 3.
        let ticks = |field: usize| -> Result<f64, BoxError> {
            Ok(fields.get(field - 3).ok_or("short /proc/PID/stat")?.parse::<u64>()? as f64)
        };
        Ok(Self { seconds: (ticks(14)? + ticks(15)?) / USER_HZ, at: Instant::now() })
    }

    /// Busy time of all CPUs: everything but idle and iowait on the `cpu` line of `/proc/stat`.
    fn take_machine() -> Result<Self, BoxError> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().find(|line| line.starts_with("cpu ")).ok_or("no cpu line in /proc/stat")?;
        let ticks: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice], guest already counted in user.
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        Ok(Self { seconds: total.saturating_sub(idle) as f64 / USER_HZ, at: Instant::now() })
    }

    /// Average number of cores busy between `earlier` and this sample.
    pub(crate) fn cores_since(&self, earlier: &CpuSample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall > 0.0 { (self.seconds - earlier.seconds) / wall } else { 0.0 }
    }
}

/// The resident set size (`VmRSS` in `/proc/PID/status`) of process `pid`, in MB (10^6 bytes).
pub(crate) fn rss_mb(pid: u32) -> Result<f64, BoxError> {
    Ok(rss_kib(pid)? as f64 * 1024.0 / 1_000_000.0)
}

/// The resident set size of process `pid`, in MiB (2^20 bytes).
pub(crate) fn rss_mib(pid: u32) -> Result<f64, BoxError> {
    Ok(rss_kib(pid)? as f64 / 1024.0)
}

/// The file descriptors process `pid` has open (entries of `/proc/PID/fd`):
/// sockets, database files and pipes alike.
pub(crate) fn open_fds(pid: u32) -> Result<usize, BoxError> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .ok_or("no VmRSS line in /proc/PID/status")?
        .trim()
        .parse::<u64>()?;
    // `/proc` says kB but means KiB.
    Ok(kib)
}
