//! CPU time over a benchmark run, from /proc: this process (broker and clients), every
//! `postgres` process on the machine (the database the replicas share, when there is one),
//! and the machine as a whole, so a figure can say whose CPU an execution costs. Also used by
//! `seb-cli`'s benches ([`ticks_of`] for the broker, database and API server processes).

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
pub const TICKS_PER_S: f64 = 100.0;

/// Cumulative CPU ticks at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// This process, user + system.
    pub process: u64,
    /// Every process named `postgres`, user + system.
    pub postgres: u64,
    /// The machine: busy (everything but idle and iowait) and total.
    pub machine_busy: u64,
    pub machine_total: u64,
}

fn proc_ticks(stat: &str) -> Option<u64> {
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks (user + system), summed by command name, of every process named one of `names`
/// (zero for a name no process has).
pub fn ticks_of(names: &[&str]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = names.iter().map(|n| ((*n).to_owned(), 0)).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let p = e.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else { continue };
        let Some(slot) = out.get_mut(comm.trim()) else { continue };
        *slot +=
            std::fs::read_to_string(p.join("stat")).ok().and_then(|t| proc_ticks(&t)).unwrap_or(0);
    }
    out
}

/// Read the counters now (zeros where /proc is absent).
pub fn sample() -> Sample {
    let mut s = Sample {
        process: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| proc_ticks(&t))
            .unwrap_or(0),
        postgres: ticks_of(&["postgres"]).values().sum(),
        ..Default::default()
    };
    if let Some(line) =
        std::fs::read_to_string("/proc/stat").ok().and_then(|t| t.lines().next().map(String::from))
    {
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        s.machine_total = total;
        s.machine_busy = total.saturating_sub(idle);
    }
    s
}

impl Sample {
    /// The CPU used between `before` and now.
    pub fn since(&self, before: &Sample) -> Sample {
        Sample {
            process: self.process.saturating_sub(before.process),
            postgres: self.postgres.saturating_sub(before.postgres),
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy),
            machine_total: self.machine_total.saturating_sub(before.machine_total),
        }
    }

    /// One line: CPU per execution of this process and of PostgreSQL, and their shares of
    /// the machine's busy time over the run.
    pub fn print(&self, wall: Duration, executions: usize, with_postgres: bool) {
        let n = executions.max(1) as f64;
        let us = |ticks: u64| ticks as f64 / TICKS_PER_S * 1e6 / n;
        let share = |ticks: u64| 100.0 * ticks as f64 / (self.machine_busy.max(1)) as f64;
        let busy = 100.0 * self.machine_busy as f64 / self.machine_total.max(1) as f64;
        let mut line = format!(
            "          CPU over {:.1} s: machine {busy:.0} % busy; this process (brokers + clients) \
             {:.0} µs/exec ({:.0} % of busy)",
            wall.as_secs_f64(),
            us(self.process),
            share(self.process)
        );
        if with_postgres {
            line.push_str(&format!(
                "; PostgreSQL {:.0} µs/exec ({:.0} % of busy)",
                us(self.postgres),
                share(self.postgres)
            ));
        }
        println!("{line}");
    }
}
