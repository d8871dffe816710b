//! The paper's figures (from `shared/reference/paper-notes.md`), in milliseconds.

use crate::results::PaperFigure;

/// A paper figure with p50 and p99 (and optionally p95).
pub fn fig(p50: f64, p95: Option<f64>, p99: f64) -> PaperFigure {
    PaperFigure { p50: Some(p50), p95, p99: Some(p99), note: String::new() }
}

/// Kubernetes broker overhead 28.2 / 36.5 / 47.1 ms.
pub fn kube_overhead() -> PaperFigure {
    PaperFigure {
        p50: Some(28.2),
        p95: Some(36.5),
        p99: Some(47.1),
        note: "EKS 1.28, RDS PostgreSQL; drift query 12.1, TokenRequest 12.1".into(),
    }
}

/// AWS broker overhead 136.9 / 180.4 / 284.1 ms.
pub fn aws_overhead() -> PaperFigure {
    PaperFigure {
        p50: Some(136.9),
        p95: Some(180.4),
        p99: Some(284.1),
        note: "us-west-2; drift query 85.3, STS AssumeRole 46.7".into(),
    }
}

/// Paper throughput: 820 req/s at 80 threads (Kubernetes), 240 req/s at 40 threads (AWS).
pub const KUBE_THROUGHPUT: (f64, usize) = (820.0, 80);
/// See [`KUBE_THROUGHPUT`].
pub const AWS_THROUGHPUT: (f64, usize) = (240.0, 40);
/// Revocation propagation: mean 2.6 s, max 5.2 s (5 s poll, 5 s cache TTL).
pub const REVOCATION_MEAN_MS: f64 = 2600.0;
/// See [`REVOCATION_MEAN_MS`].
pub const REVOCATION_MAX_MS: f64 = 5200.0;
