//! The on-chain weight conversion of the bittensor SDK 9.10.0, and the few Python float
//! semantics the scoring pass must copy to match the original to the last bit.

use serde::Deserialize;
use serde::Serialize;

/// Largest on-chain weight (`U16_MAX` in `bittensor/utils/weight_utils.py`, byteleap-protocol.md
/// §4.7 step 4).
pub const U16_MAX: u16 = 65535;

/// Why weights cannot be converted. The SDK raises an exception in each case (the original
/// validator then logs it and does not submit).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum EmitError {
    /// `min(weights)` fails on an empty list.
    #[error("no weights to convert")]
    Empty,
    /// "Passed weight is negative cannot exist on chain".
    #[error("weight {weight} of uid {uid} is negative and cannot exist on chain")]
    Negative { uid: u16, weight: f64 },
    /// `round()` of NaN or infinity (a NaN weight, or an infinite one divided by the maximum).
    #[error("weight {weight} of uid {uid} is not a finite number")]
    NotFinite { uid: u16, weight: f64 },
}

/// `convert_weights_and_uids_for_emit` of bittensor 9.10.0 (`bittensor/utils/weight_utils.py`):
/// if the weights sum to 0 nothing is set; otherwise each weight is divided by the largest,
/// scaled to `round(w · 65535)` (Python's `round`: half to even) and zeros are dropped. Pairs
/// keep the order given.
///
/// The SDK converts its numpy arrays with `.tolist()` first, so all of this is Python float
/// (f64) arithmetic: the same operations here give the same bits.
pub fn convert_weights_and_uids_for_emit(weights: &[(u16, f64)]) -> Result<Vec<(u16, u16)>, EmitError> {
    if weights.is_empty() {
        return Err(EmitError::Empty);
    }
    if let Some(&(uid, weight)) = weights.iter().find(|(_, w)| *w < 0.0) {
        return Err(EmitError::Negative { uid, weight });
    }
    if let Some(&(uid, weight)) = weights.iter().find(|(_, w)| !w.is_finite()) {
        return Err(EmitError::NotFinite { uid, weight });
    }
    if py_sum(weights.iter().map(|(_, w)| *w)) == 0.0 {
        return Ok(Vec::new());
    }
    let max_weight = py_max_of(weights.iter().map(|(_, w)| *w)).unwrap_or(0.0);
    let mut out = Vec::with_capacity(weights.len());
    for &(uid, weight) in weights {
        let scaled = (weight / max_weight * f64::from(U16_MAX)).round_ties_even();
        // 0 ≤ weight ≤ max_weight, so 0 ≤ scaled ≤ 65535.
        let value = scaled as u16;
        if value != 0 {
            out.push((uid, value));
        }
    }
    Ok(out)
}

/// Python's `sum()` of floats on CPython ≤ 3.11: left to right, plain IEEE additions. (CPython
/// 3.12 switched `sum()` to compensated summation; the original's vectors in
/// byteleap-protocol.md §9 were produced with 3.11.7.) `sum()` starts from the int 0, and
/// `0 + x == x` exactly, so starting from 0.0 is the same.
pub(crate) fn py_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |acc, v| acc + v)
}

/// Python's `min(a, b)`: `b` only if `b < a` (so a NaN second argument loses, a NaN first one
/// wins).
pub(crate) fn py_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

/// Python's `max(a, b)`: `b` only if `b > a`.
pub(crate) fn py_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// Python's `max(iterable)`: the first element, replaced by any later one that is greater.
pub(crate) fn py_max_of(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    values.into_iter().fold(None, |acc, v| Some(acc.map_or(v, |a| py_max(a, v))))
}
