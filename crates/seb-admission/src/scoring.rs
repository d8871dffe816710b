//! Consequence scoring (spec section 5), documented in `docs/admission.md`.
//!
//! Each platform profile reports five factors in `0..=1` with the rules that set them
//! ([`seb_target::ConsequenceFactors`]). The score is
//!
//! ```text
//! weighted = Σ wᵢ·fᵢ / Σ wᵢ                (weights configurable)
//! peak     = peak_weight · maxᵢ fᵢ         (one severe factor is never averaged away)
//! score    = max(weighted, peak)
//! level    = number of thresholds ≤ score  (thresholds[k] is the lowest score of L(k+1))
//! ```
//!
//! A factor that is not a finite number counts as 1 (fail safe); factors are clamped to
//! `0..=1`. Scores are recorded as integer thousandths so that signed records never carry
//! floating point.

use seb_core::types::RiskLevel;
use seb_target::ConsequenceFactors;
use serde::{Deserialize, Serialize};

use crate::error::AdmissionError;

/// Weight of each factor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub blast_radius: f64,
    pub privilege_expansion: f64,
    pub data_sensitivity: f64,
    pub irreversibility: f64,
    pub uncertainty: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            blast_radius: 0.3,
            privilege_expansion: 0.25,
            data_sensitivity: 0.2,
            irreversibility: 0.15,
            uncertainty: 0.1,
        }
    }
}

impl Weights {
    fn all(&self) -> [f64; 5] {
        [
            self.blast_radius,
            self.privilege_expansion,
            self.data_sensitivity,
            self.irreversibility,
            self.uncertainty,
        ]
    }
}

/// `[admission.scoring]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    #[serde(default)]
    pub weights: Weights,
    /// Multiplier of the largest factor (`0..=1`).
    #[serde(default = "default_peak")]
    pub peak_weight: f64,
    /// Lowest score of L1, L2, L3, L4 and L5, strictly increasing within `(0, 1]`.
    #[serde(default = "default_thresholds")]
    pub thresholds: [f64; 5],
}

fn default_peak() -> f64 {
    0.75
}
fn default_thresholds() -> [f64; 5] {
    [0.05, 0.25, 0.45, 0.65, 0.9]
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            peak_weight: default_peak(),
            thresholds: default_thresholds(),
        }
    }
}

/// Factors in thousandths, as recorded and as passed to Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorsMilli {
    pub blast_radius: u32,
    pub privilege_expansion: u32,
    pub data_sensitivity: u32,
    pub irreversibility: u32,
    pub uncertainty: u32,
}

/// A scored proposal: what approvers see and what is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// The level the score maps to.
    pub level: RiskLevel,
    /// `max(weighted, peak)`, thousandths.
    pub score_milli: u32,
    /// The weighted mean, thousandths.
    pub weighted_milli: u32,
    /// `peak_weight · max factor`, thousandths.
    pub peak_milli: u32,
    /// Each factor, thousandths (after clamping).
    pub factors: FactorsMilli,
    /// The platform rules that set the factors.
    pub reasons: Vec<String>,
}

fn clamp(f: f64) -> f64 {
    if f.is_finite() { f.clamp(0.0, 1.0) } else { 1.0 }
}

fn milli(f: f64) -> u32 {
    // Round half up; `f` is within 0..=1 here, so the cast cannot overflow.
    let m = (clamp(f) * 1000.0).round();
    if m >= 1000.0 {
        1000
    } else if m <= 0.0 {
        0
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let v = m as u32;
        v
    }
}

impl ScoringConfig {
    /// Check the weights and thresholds.
    pub fn validate(&self) -> Result<(), AdmissionError> {
        let bad = |s: &str| Err(AdmissionError::Config(format!("scoring: {s}")));
        let w = self.weights.all();
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return bad("weights must be finite and non-negative");
        }
        if w.iter().sum::<f64>() <= 0.0 {
            return bad("weights must not all be zero");
        }
        if !self.peak_weight.is_finite() || !(0.0..=1.0).contains(&self.peak_weight) {
            return bad("peak_weight must be within 0..=1");
        }
        let mut prev = 0.0;
        for t in self.thresholds {
            if !t.is_finite() || t <= prev || t > 1.0 {
                return bad("thresholds must be strictly increasing within (0, 1]");
            }
            prev = t;
        }
        Ok(())
    }

    /// Score a proposal's factors.
    pub fn score(&self, f: &ConsequenceFactors) -> Score {
        let factors = [
            clamp(f.blast_radius),
            clamp(f.privilege_expansion),
            clamp(f.data_sensitivity),
            clamp(f.irreversibility),
            clamp(f.uncertainty),
        ];
        let w = self.weights.all();
        let total: f64 = w.iter().sum();
        let weighted = if total > 0.0 {
            w.iter().zip(factors.iter()).map(|(w, f)| w * f).sum::<f64>() / total
        } else {
            1.0
        };
        let peak = self.peak_weight * factors.iter().copied().fold(0.0, f64::max);
        // Compare in thousandths, as recorded, so that what is shown reproduces the level.
        let score_milli = milli(weighted).max(milli(peak));
        let n = self.thresholds.iter().filter(|t| milli(**t) <= score_milli).count();
        let level = RiskLevel::new(u8::try_from(n).unwrap_or(5)).unwrap_or(RiskLevel::L5);
        let [b, p, d, i, u] = factors;
        Score {
            level,
            score_milli,
            weighted_milli: milli(weighted),
            peak_milli: milli(peak),
            factors: FactorsMilli {
                blast_radius: milli(b),
                privilege_expansion: milli(p),
                data_sensitivity: milli(d),
                irreversibility: milli(i),
                uncertainty: milli(u),
            },
            reasons: f.reasons.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(b: f64, p: f64, d: f64, i: f64, u: f64) -> ConsequenceFactors {
        ConsequenceFactors {
            blast_radius: b,
            privilege_expansion: p,
            data_sensitivity: d,
            irreversibility: i,
            uncertainty: u,
            reasons: vec![],
        }
    }

    #[test]
    fn default_bands() {
        let s = ScoringConfig::default();
        assert_eq!(s.score(&f(0.0, 0.0, 0.0, 0.0, 0.0)).level, RiskLevel::L0);
        // The test double's default `set`: risk 0.1 on blast radius and data sensitivity.
        let low = s.score(&f(0.1, 0.0, 0.1, 0.0, 0.0));
        assert_eq!(
            (low.level, low.weighted_milli, low.peak_milli, low.score_milli),
            (RiskLevel::L1, 50, 75, 75)
        );
        assert_eq!(s.score(&f(0.5, 0.0, 0.5, 0.0, 0.0)).level, RiskLevel::L2);
        assert_eq!(s.score(&f(0.7, 0.0, 0.7, 0.0, 0.0)).level, RiskLevel::L3);
        assert_eq!(s.score(&f(0.9, 0.0, 0.9, 0.0, 0.0)).level, RiskLevel::L4);
        assert_eq!(s.score(&f(1.0, 1.0, 1.0, 1.0, 1.0)).level, RiskLevel::L5);
        // One severe factor is not averaged away: a RoleBinding (privilege 1.0) is L4.
        assert_eq!(s.score(&f(0.2, 1.0, 0.1, 0.1, 0.1)).level, RiskLevel::L4);
    }

    #[test]
    fn non_finite_factors_fail_safe() {
        let s = ScoringConfig::default();
        let x = s.score(&f(f64::NAN, f64::INFINITY, 0.0, 0.0, -3.0));
        assert_eq!(x.factors.blast_radius, 1000);
        assert_eq!(x.factors.privilege_expansion, 1000);
        assert_eq!(x.factors.uncertainty, 0);
        assert!(x.level >= RiskLevel::L4);
    }

    #[test]
    fn config_is_checked() {
        let c = ScoringConfig { thresholds: [0.5, 0.4, 0.6, 0.7, 0.8], ..Default::default() };
        assert!(c.validate().is_err());
        let zero = Weights {
            blast_radius: 0.0,
            privilege_expansion: 0.0,
            data_sensitivity: 0.0,
            irreversibility: 0.0,
            uncertainty: 0.0,
        };
        assert!(ScoringConfig { weights: zero, ..Default::default() }.validate().is_err());
        assert!(ScoringConfig { peak_weight: 1.5, ..Default::default() }.validate().is_err());
        assert!(ScoringConfig::default().validate().is_ok());
    }
}
