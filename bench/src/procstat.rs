//! CPU time and memory of a process, read from Linux's `/proc`.
//!
//! Used for the generator itself (`/proc/self`) and for the broker under
//! test (`--broker-pid`). CPU time comes from fields 14 and 15 (utime,
//! stime) of `/proc/PID/stat`, in clock ticks of 1/100 s (the value of
//! `CLK_TCK` on every Linux architecture the tool targets); memory from
//! `VmRSS` and `VmHWM` in `/proc/PID/status`.

use std::time::{Duration, Instant};

/// Clock ticks per second of the `/proc/PID/stat` CPU fields.
const CLK_TCK: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// The generator itself.
    SelfProcess,
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::SelfProcess => "/proc/self".to_owned(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// User + system CPU seconds consumed so far, parsed from the text of
/// `/proc/PID/stat`.
pub fn parse_cpu_secs(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses itself: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')' come field 3 (state) onwards: utime is field 14, i.e. the
    // 12th item here, and stime the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

/// The value in bytes of a `kB` line such as `VmRSS:  1234 kB` in the text
/// of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_ascii_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// CPU seconds of `pid`, `None` if it cannot be read (gone, no /proc).
pub fn cpu_secs(pid: Pid) -> Option<f64> {
    let text = std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?;
    parse_cpu_secs(&text)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: Pid) -> Option<u64> {
    let text = std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?;
    parse_status_kb(&text, "VmRSS")
}

/// A point in time with the CPU time of the generator and of the broker,
/// so that two samples give CPU use over the interval between them.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    generator_secs: Option<f64>,
    broker_secs: Option<f64>,
}

impl CpuSample {
    pub fn take(broker: Option<u32>) -> Self {
        CpuSample {
            at: Instant::now(),
            generator_secs: cpu_secs(Pid::SelfProcess),
            broker_secs: broker.and_then(|p| cpu_secs(Pid::Other(p))),
        }
    }

    /// CPU use since `earlier`, in percent of one core: (generator, broker).
    /// CPU seconds the broker used since `earlier`.
    pub fn broker_secs_since(&self, earlier: &CpuSample) -> Option<f64> {
        Some(self.broker_secs? - earlier.broker_secs?)
    }

    pub fn percent_since(&self, earlier: &CpuSample) -> (Option<f64>, Option<f64>) {
        let wall = self
            .at
            .duration_since(earlier.at)
            .max(Duration::from_millis(1));
        let pct = |a: Option<f64>, b: Option<f64>| Some((a? - b?) / wall.as_secs_f64() * 100.0);
        (
            pct(self.generator_secs, earlier.generator_secs),
            pct(self.broker_secs, earlier.broker_secs),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        // proc(5): utime is field 14 and stime field 15, in clock ticks.
        let stat = "4242 (my (odd) broker) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 100000 500 18446744073709551615";
        assert_eq!(parse_cpu_secs(stat), Some(3.0));
        assert_eq!(parse_cpu_secs("garbage"), None);
    }

    #[test]
    fn parses_status_kb_lines() {
        let status = "Name:\tmosquitto\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(1536 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_secs(Pid::SelfProcess).is_some());
        assert!(rss_bytes(Pid::SelfProcess).unwrap_or(0) > 0);
    }
}
