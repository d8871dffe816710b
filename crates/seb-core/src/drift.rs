//! Live-state drift (spec section 7, check 11).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::types::Tolerance;

/// Compare the admitted projection with the live one. Every admitted pointer must be present
/// live with an equal value, or a numeric value within its tolerance. A pointer admitted as
/// `null` matches a live `null` or an absent value. Live pointers that were not admitted are
/// ignored (the projection is what the contract depends on).
pub fn compare(
    admitted: &BTreeMap<String, Value>,
    tolerance: &BTreeMap<String, Tolerance>,
    live: &BTreeMap<String, Value>,
) -> Result<(), String> {
    for (ptr, want) in admitted {
        let got = live.get(ptr).unwrap_or(&Value::Null);
        if got == want {
            continue;
        }
        match tolerance.get(ptr) {
            Some(tol) => within(*tol, want, got)
                .map_err(|e| format!("`{ptr}` drifted beyond tolerance: {e}"))?,
            None => return Err(format!("`{ptr}` changed since admission")),
        }
    }
    Ok(())
}

fn within(tol: Tolerance, want: &Value, got: &Value) -> Result<(), String> {
    let (Some(a), Some(b)) = (want.as_f64(), got.as_f64()) else {
        return Err("tolerance applies to numbers only".into());
    };
    let diff = (a - b).abs();
    let limit = match tol {
        Tolerance::Abs(e) => e,
        Tolerance::Rel(r) => (a * r).abs(),
    };
    if diff <= limit { Ok(()) } else { Err(format!("{b} is {diff} from {a}, limit {limit}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn exact_tolerance_and_absence() {
        let admitted = m(&[("/spec/replicas", json!(3)), ("/data/x", Value::Null)]);
        let none = BTreeMap::new();
        assert!(compare(&admitted, &none, &m(&[("/spec/replicas", json!(3))])).is_ok());
        assert!(compare(&admitted, &none, &m(&[("/spec/replicas", json!(4))])).is_err());
        assert!(
            compare(&admitted, &none, &m(&[("/spec/replicas", json!(3)), ("/data/x", json!(1))]))
                .is_err()
        );
        let tol: BTreeMap<String, Tolerance> =
            [("/spec/replicas".to_owned(), Tolerance::Abs(1.0))].into();
        assert!(compare(&admitted, &tol, &m(&[("/spec/replicas", json!(4))])).is_ok());
        assert!(compare(&admitted, &tol, &m(&[("/spec/replicas", json!(5))])).is_err());
        let rel: BTreeMap<String, Tolerance> =
            [("/spec/replicas".to_owned(), Tolerance::Rel(0.5))].into();
        assert!(compare(&admitted, &rel, &m(&[("/spec/replicas", json!(4.5))])).is_ok());
        assert!(compare(&admitted, &rel, &m(&[("/spec/replicas", json!(5))])).is_err());
        assert!(compare(&admitted, &tol, &m(&[("/spec/replicas", json!("3"))])).is_err());
    }
}
