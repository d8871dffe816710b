//! The machine's own floor, measured in the same run as the benchmark that prints it
//! (issue 17): one strict Ed25519 verification, one Ed25519 signature and one fsync of a
//! small write in the benchmark's own directory. An execution must verify two signatures
//! (certificate, caller proof) and sign two records (admit, outcome), so its CPU floor is
//! `2 × verify + 2 × sign` and the throughput floor of the machine is `cores / that`.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use seb_core::keys::SigningKey;

/// The measured floor.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Median strict Ed25519 verification, µs.
    pub verify_us: f64,
    /// Median Ed25519 signature, µs.
    pub sign_us: f64,
    /// Median `write` + `fsync` of 4 KiB appended to a file, µs.
    pub fsync_us: f64,
    /// Cores available to the process.
    pub cores: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

impl Floor {
    /// Measure in `dir` (the benchmark's store directory: the fsync is on the same disk).
    pub fn measure(dir: &Path) -> Self {
        let key = SigningKey::from_seed(&[9; 32]);
        let public = key.public_key();
        let msg = [7u8; 200];
        let sig = key.sign(&msg);
        // Warm up for half a second first. The floor still moves with the machine: one of
        // this VM's two vCPUs runs the same code up to 1.8× slower for minutes at a time
        // (`taskset` shows it), and each run prints the floor it measured for that reason.
        let warm = Instant::now();
        while warm.elapsed().as_millis() < 500 {
            public.verify(std::hint::black_box(&msg), &sig).unwrap();
            std::hint::black_box(key.sign(std::hint::black_box(&msg)));
        }
        let verify_us = median(
            (0..2_000)
                .map(|_| {
                    let t = Instant::now();
                    public.verify(std::hint::black_box(&msg), &sig).unwrap();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        );
        let sign_us = median(
            (0..2_000)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(key.sign(std::hint::black_box(&msg)));
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        );
        let path = dir.join("floor.fsync");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = [0u8; 4096];
        let fsync_us = median(
            (0..50)
                .map(|_| {
                    let t = Instant::now();
                    f.write_all(&block).unwrap();
                    f.sync_all().unwrap();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        );
        let _ = std::fs::remove_file(&path);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self { verify_us, sign_us, fsync_us, cores }
    }

    /// CPU floor of one execution: two verifications and two signatures, µs.
    pub fn exec_us(&self) -> f64 {
        2.0 * self.verify_us + 2.0 * self.sign_us
    }

    /// Executions per second the machine's cores could do if signatures were all the work.
    pub fn exec_per_s(&self) -> f64 {
        self.cores as f64 * 1e6 / self.exec_us()
    }

    /// Print the floor lines.
    pub fn print(&self) {
        println!(
            "floor (this run): Ed25519 verify {:.1} µs, sign {:.1} µs, fsync {:.0} µs; \
             execution CPU floor 2·verify + 2·sign = {:.0} µs → {:.0} exec/s on {} cores",
            self.verify_us,
            self.sign_us,
            self.fsync_us,
            self.exec_us(),
            self.exec_per_s(),
            self.cores
        );
    }

    /// `achieved / floor` for a throughput, as a percentage.
    pub fn throughput_pct(&self, exec_per_s: f64) -> f64 {
        100.0 * exec_per_s / self.exec_per_s()
    }

    /// `floor / achieved` for the CPU one execution cost the process (all threads), as a
    /// percentage: how much of the work is the four signature operations.
    pub fn cpu_pct(&self, cpu_us_per_exec: f64) -> f64 {
        100.0 * self.exec_us() / cpu_us_per_exec.max(1.0)
    }
}
