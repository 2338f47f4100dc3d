//! Signals and process trees by PID: every process a test starts is ended by
//! its own id, never by name.

use std::time::Duration;

use tokio::process::Child;
use tokio::time::Instant;

/// Sends `signal` to one process. A process that is already gone is fine.
pub(crate) fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only
    // yields ESRCH.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Whether a process with this id exists (a zombie counts as gone).
pub(crate) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_state(&stat).is_some_and(|state| state != 'Z'),
        Err(_) => false,
    }
}

/// The state letter of a /proc/PID/stat line (after the `(comm)` field,
/// which may itself contain spaces and parentheses).
fn stat_state(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().next()?.chars().next()
}

/// The parent pid of a /proc/PID/stat line.
fn stat_parent(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Every process descended from `root` (children, grandchildren, …), found
/// by walking /proc; `root` itself is not included.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, stat_parent(&stat)?))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// SIGKILLs one process and blocks (briefly, for use in `Drop`) until it is
/// gone, so its folder can be removed after it.
pub(crate) fn kill_blocking(pid: u32) {
    send_signal(pid, libc::SIGKILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while is_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls until the process is gone. Returns false on timeout.
pub(crate) async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Ends a child we spawned: `signal` first, SIGKILL if it has not exited
/// within `grace`, and reaps it.
pub(crate) async fn stop_child(child: &mut Child, signal: libc::c_int, grace: Duration) {
    if let Some(pid) = child.id() {
        send_signal(pid, signal);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_parent_past_a_tricky_command_name() {
        let stat = "1234 (a) b (c)) S 42 1234 1234 0 -1";
        assert_eq!(stat_state(stat), Some('S'));
        assert_eq!(stat_parent(stat), Some(42));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(is_alive(std::process::id()));
    }
}
