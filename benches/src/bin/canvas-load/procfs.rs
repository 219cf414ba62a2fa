//! What the server process costs, read from `/proc` (Linux): CPU time and resident memory.

use std::process::Command;

/// A server process the load generator watches.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pid: u32,
    ticks_per_second: f64,
}

impl Process {
    /// Watches `pid`; `None` when there is no such process.
    pub fn watch(pid: u32) -> Option<Process> {
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        let p = Process {
            pid,
            ticks_per_second,
        };
        p.cpu_seconds().map(|_| p)
    }

    /// User + system CPU seconds the process has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name (field 2) may hold spaces; fields after it are plain.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / self.ticks_per_second)
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = Process::watch(std::process::id()).expect("own process");
        assert!(me.cpu_seconds().is_some());
        assert!(me.rss_bytes().unwrap_or(0) > 0);
    }
}
