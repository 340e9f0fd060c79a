//! The process's table of open files, grown to its open-file limit once,
//! at start.
//!
//! Linux keeps a process's open files in a table that starts with room
//! for 64 and doubles when a new descriptor does not fit. When threads
//! share the table, the call that needed the room (an `accept4`, a
//! `socket`) then waits for an RCU grace period (`synchronize_rcu` in the
//! kernel's `expand_fdtable`) before it returns, so readers of the old
//! table are done with it. On the 2-core machines of docs/performance.md
//! that wait was 13 to 30 ms, in uninterruptible sleep: the server's
//! acceptor stopped accepting, and a load generator on one thread stopped
//! altogether. It happens each time the count of open connections first
//! crosses a power of two, which customers arriving at random times do
//! well into a run (change 57).
//!
//! The table never shrinks, so growing it before the traffic comes makes
//! that wait happen once, at start, and not at all in a process that has
//! not started a thread yet. The room costs kernel memory, not the
//! resident set: 8 bytes a descriptor, 256 KiB for this machine's limit
//! of 20,000 (rounded up to 32,768).

/// Descriptors reserved at most, whatever the limit: a limit of a million
/// (some containers' default) would hold 8 MiB of table for connections
/// that may never come. Past this a process still grows the table, one
/// wait each time it doubles.
pub const MAX_RESERVED: u64 = 65_536;

/// Grows the table to hold descriptors up to the soft open-file limit (at
/// most [`MAX_RESERVED`]), and returns how many it now holds at least.
/// Nothing stays open: a descriptor is copied to the highest number
/// reserved, which makes the kernel grow the table, and closed again.
pub fn reserve() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit it is given, which lives
    // for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wanted = limit.rlim_cur.min(MAX_RESERVED);
    // At most MAX_RESERVED - 1, which an int holds.
    let highest = libc::c_int::try_from(wanted.saturating_sub(1)).unwrap_or(libc::c_int::MAX);
    let null = std::fs::File::open("/dev/null")?;
    use std::os::fd::AsRawFd;
    // F_DUPFD, not dup2: it takes the lowest free number at or above
    // `highest` and never closes a descriptor that is already there.
    // SAFETY: a plain fcntl on a descriptor this function owns; the copy
    // is closed below and used for nothing else.
    let copy = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, highest) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` was just returned by fcntl and nothing else holds it.
    unsafe { libc::close(copy) };
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own count of the table's slots (`FDSize`).
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn the_table_holds_the_open_file_limit_and_nothing_stays_open() {
        let reserved = reserve().unwrap();
        assert!(reserved > 64, "a limit this low leaves nothing to test");
        assert!(
            table_size() >= reserved,
            "FDSize {} < {reserved}",
            table_size()
        );
        // The copy went to the highest number reserved, and was closed.
        let copy = format!("/proc/self/fd/{}", reserved - 1);
        assert!(!std::path::Path::new(&copy).exists(), "{copy} is open");
    }
}
