//! Classification metrics: ROC AUC, precision/recall of the fraud class, macro-F1, and the
//! threshold that maximises macro-F1.

use serde::{Deserialize, Serialize};

/// Metrics at one threshold.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Rows scored.
    pub rows: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Mean of the F1 of both classes.
    pub macro_f1: f64,
    /// Precision of the fraud class.
    pub precision: f64,
    /// Recall of the fraud class.
    pub recall: f64,
    /// Score at or above which a number is called fraud.
    pub threshold: f64,
}

/// ROC AUC with ties counted half (Mann–Whitney).
pub fn auc(scores: &[f64], y: &[u8]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] == 1 {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v == 1).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// Metrics of `scores` against labels at `threshold`.
pub fn report(scores: &[f64], y: &[u8], threshold: f64) -> Report {
    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (s, &l) in scores.iter().zip(y) {
        match (*s >= threshold, l == 1) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    Report {
        rows: scores.len(),
        auc: auc(scores, y),
        macro_f1: (f1(tp, fp, fn_) + f1(tn, fn_, fp)) / 2.0,
        precision: if tp + fp == 0.0 { 0.0 } else { tp / (tp + fp) },
        recall: if tp + fn_ == 0.0 {
            0.0
        } else {
            tp / (tp + fn_)
        },
        threshold,
    }
}

/// The threshold maximising macro-F1 over the observed scores.
pub fn best_threshold(scores: &[f64], y: &[u8]) -> f64 {
    let mut cands: Vec<f64> = scores.to_vec();
    cands.sort_by(f64::total_cmp);
    cands.dedup();
    let step = (cands.len() / 400).max(1);
    let mut best = (f64::MIN, 0.5);
    for t in cands.iter().step_by(step) {
        let m = report(scores, y, *t).macro_f1;
        if m > best.0 {
            best = (m, *t);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_f1_on_known_cases() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[0, 0, 1, 1]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[0, 1]), 0.5);
        let r = report(&[0.1, 0.2, 0.8, 0.9], &[0, 1, 1, 1], 0.5);
        assert_eq!((r.precision, r.recall), (1.0, 2.0 / 3.0));
        assert!((best_threshold(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]) - 0.8).abs() < 1e-9);
    }
}
