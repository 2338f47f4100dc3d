//! A process's memory as the kernel reports it, to show that something
//! stays bounded.

/// Resident memory of one process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// The highest resident set size the process ever had (`VmHWM`).
    pub peak_kib: u64,
}

/// The memory of process `pid`, or `None` once it is gone.
pub fn process_memory(pid: u32) -> Option<ProcessMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcessMemory {
        rss_kib: status_field(&status, "VmRSS")?,
        peak_kib: status_field(&status, "VmHWM")?,
    })
}

/// A `Name:   1234 kB` line of /proc/PID/status, in KiB.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let memory = process_memory(std::process::id()).expect("this process exists");
        assert!(memory.rss_kib > 0);
        assert!(memory.peak_kib >= memory.rss_kib);
    }

    #[test]
    fn reads_status_lines() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(1024));
        assert_eq!(status_field(status, "VmHWM"), Some(2048));
        assert_eq!(status_field(status, "VmSwap"), None);
    }
}
