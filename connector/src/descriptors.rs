//! The process's limit on open files (`RLIMIT_NOFILE`). Every connection
//! is one: the link to the XMPP server, each request in flight to a bot,
//! SQS, every API client. A service usually starts with a soft limit of
//! 1,024 and a far higher hard limit, which the process may raise its soft
//! limit to: the connector does so at start, and sizes its API connection
//! cap from what it got ([`crate::api::connection_cap`]).

use std::io;

/// The soft limit asked for when the hard limit is unlimited: Linux
/// refuses more than `fs.nr_open`, 1,048,576 unless raised.
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The limits after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many files the process may have open now.
    pub soft: u64,
    /// The most the soft limit may be raised to.
    pub hard: u64,
    /// The soft limit before, when [`raise`] raised it.
    pub raised_from: Option<u64>,
}

/// Raises the soft limit to the hard one (or to 1,048,576 when the hard
/// one is unlimited), where it is lower.
pub fn raise() -> io::Result<Limits> {
    let (soft, hard) = get()?;
    let target = if hard == libc::RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        hard
    };
    if soft >= target {
        return Ok(Limits {
            soft,
            hard,
            raised_from: None,
        });
    }
    set(target, hard)?;
    let (now, hard) = get()?;
    Ok(Limits {
        soft: now,
        hard,
        raised_from: Some(soft),
    })
}

/// The current soft and hard limits.
pub fn get() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

fn set(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raising leaves the soft limit at the hard one (or the cap), and
    /// raising again changes nothing. Each test runs in its own process
    /// under nextest; raising the soft limit harms no other test.
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let first = raise().expect("raise");
        if first.hard == libc::RLIM_INFINITY {
            assert!(first.soft >= UNLIMITED_TARGET, "{first:?}");
        } else {
            assert_eq!(first.soft, first.hard, "{first:?}");
        }
        assert_eq!(get().expect("get"), (first.soft, first.hard));
        let again = raise().expect("raise again");
        assert_eq!((again.soft, again.raised_from), (first.soft, None));
    }
}
