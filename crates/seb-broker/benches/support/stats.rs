//! Percentiles for the benchmarks' printed figures (shared with `seb-cli`'s benches).

/// The `p` quantile (0.0–1.0) of `v`, nearest rank; sorts `v`; 0 for no samples.
pub fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)]
}
