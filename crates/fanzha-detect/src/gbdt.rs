//! Gradient-boosted decision trees for binary classification (logistic loss, second-order
//! gains, histogram splits with a learned direction for missing values, row and column
//! subsampling). Small and deterministic for a seed; scoring needs no binning (splits keep
//! their raw thresholds), so a model trained offline applies to online features directly.
//!
//! Why our own: the tables are small (thousands of numbers × tens of features), the
//! maintained pure-Rust choices either pull a large dependency tree or lack missing-value
//! handling, and we need exact determinism and a stable JSON model format.

use crate::metrics::{self, Report};
use crate::Table;
use serde::{Deserialize, Serialize};

/// Training parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// Boosting rounds (trees).
    pub rounds: u32,
    /// Shrinkage per tree.
    pub learning_rate: f32,
    /// Maximum depth of a tree.
    pub max_depth: u32,
    /// Minimum hessian sum in a child.
    pub min_child_hess: f32,
    /// L2 regularisation of leaf values.
    pub lambda: f32,
    /// Minimum gain to split.
    pub gamma: f32,
    /// Share of rows drawn per tree.
    pub row_sample: f32,
    /// Share of features drawn per tree.
    pub col_sample: f32,
    /// Histogram bins per feature (≤ 255).
    pub bins: u32,
    /// Seed of the subsampling.
    pub seed: u64,
    /// Ratio features derived from pairs of input columns (when both exist).
    #[serde(default)]
    pub ratios: Vec<(String, String)>,
}

/// Ratios of the Sichuan per-user behaviour counts that separate fraud well: diversity of
/// peers, SMS vs voice, devices and places per call, spend per call, concentration in time.
pub fn sichuan_ratios() -> Vec<(String, String)> {
    [
        ("opposite_unique", "opposite_count"),
        ("voccalltype1", "opposite_unique"),
        ("sms_count", "opposite_count"),
        ("sms_nunique", "sms_count"),
        ("imeis", "opposite_count"),
        ("city_name_call", "opposite_count"),
        ("voc_hour_mode_count", "opposite_count"),
        ("voc_day_mode_count", "opposite_count"),
        ("arpu_mean", "opposite_count"),
        ("flow_sum", "arpu_sum"),
        ("call_dur_max", "call_dur_mean"),
        ("phone2oppo_sum_max", "phone2oppo_sum_mean"),
        ("opposite_count", "voc_day_nunique"),
        ("sms_count", "day_nunique"),
        ("busi_count", "flow_month"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

impl Default for Params {
    fn default() -> Params {
        Params {
            rounds: 600,
            learning_rate: 0.03,
            max_depth: 5,
            min_child_hess: 2.0,
            lambda: 2.0,
            gamma: 0.0,
            row_sample: 0.8,
            col_sample: 0.5,
            bins: 255,
            seed: 2016,
            ratios: sichuan_ratios(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Node {
    /// Feature index (`u32::MAX` for a leaf).
    f: u32,
    /// Go left when value <= t.
    t: f32,
    /// Missing values go left.
    ml: bool,
    l: u32,
    r: u32,
    /// Leaf value (already scaled by the learning rate).
    v: f32,
}

const LEAF: u32 = u32::MAX;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, row: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.f == LEAF {
                return n.v;
            }
            let x = row[n.f as usize];
            let left = if x.is_nan() { n.ml } else { x <= n.t };
            i = if left { n.l } else { n.r } as usize;
        }
    }
}

/// A trained model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// Format tag.
    pub format: String,
    /// Feature names in the order rows are read.
    pub features: Vec<String>,
    /// Log-odds of the training prior.
    base: f32,
    trees: Vec<Tree>,
    /// Decision threshold on the probability (maximises macro-F1 out of fold).
    pub threshold: f64,
    /// Parameters it was trained with.
    pub params: Params,
    /// Cross-validated metrics on the training table, if computed.
    pub cv: Option<Report>,
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Per-feature cut points and the binned table (column-major; bin 0 = missing).
struct Binned {
    cuts: Vec<Vec<f32>>,
    bins: Vec<Vec<u8>>,
}

fn bin_table(t: &Table, max_bins: u32) -> Binned {
    let nf = t.features.len();
    let n = t.rows();
    let mut cuts = Vec::with_capacity(nf);
    let mut bins = Vec::with_capacity(nf);
    for f in 0..nf {
        let mut vals: Vec<f32> = (0..n)
            .map(|r| t.x[r * nf + f])
            .filter(|v| !v.is_nan())
            .collect();
        vals.sort_by(f32::total_cmp);
        vals.dedup();
        let max_cuts = (max_bins.clamp(2, 255) - 1) as usize;
        let c: Vec<f32> = if vals.len() <= max_cuts + 1 {
            vals.windows(2)
                .map(|w| w[0] + (w[1] - w[0]) / 2.0)
                .collect()
        } else {
            let mut c: Vec<f32> = (1..=max_cuts)
                .map(|k| vals[k * (vals.len() - 1) / (max_cuts + 1)])
                .collect();
            c.dedup();
            c
        };
        let col: Vec<u8> = (0..n)
            .map(|r| {
                let v = t.x[r * nf + f];
                if v.is_nan() {
                    0
                } else {
                    1 + c.partition_point(|cut| *cut < v) as u8
                }
            })
            .collect();
        cuts.push(c);
        bins.push(col);
    }
    Binned { cuts, bins }
}

struct Grower<'a> {
    b: &'a Binned,
    g: &'a [f32],
    h: &'a [f32],
    p: &'a Params,
    features: Vec<usize>,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn leaf(&mut self, gs: f32, hs: f32) -> u32 {
        let v = -gs / (hs + self.p.lambda) * self.p.learning_rate;
        self.nodes.push(Node {
            f: LEAF,
            t: 0.0,
            ml: false,
            l: 0,
            r: 0,
            v,
        });
        (self.nodes.len() - 1) as u32
    }

    fn grow(&mut self, rows: &mut [u32], depth: u32) -> u32 {
        let (mut gs, mut hs) = (0f32, 0f32);
        for &r in rows.iter() {
            gs += self.g[r as usize];
            hs += self.h[r as usize];
        }
        if depth >= self.p.max_depth || rows.len() < 4 || hs < 2.0 * self.p.min_child_hess {
            return self.leaf(gs, hs);
        }
        let lambda = self.p.lambda;
        let parent = gs * gs / (hs + lambda);
        // (gain, feature, bin k, missing_left)
        let mut best: Option<(f32, usize, usize, bool)> = None;
        let mut hist_g = [0f32; 256];
        let mut hist_h = [0f32; 256];
        for &f in &self.features {
            hist_g.fill(0.0);
            hist_h.fill(0.0);
            let col = &self.b.bins[f];
            for &r in rows.iter() {
                let b = col[r as usize] as usize;
                hist_g[b] += self.g[r as usize];
                hist_h[b] += self.h[r as usize];
            }
            let nb = self.b.cuts[f].len() + 1; // value bins 1..=nb
            let (gm, hm) = (hist_g[0], hist_h[0]);
            let (mut gl, mut hl) = (0f32, 0f32);
            for k in 1..nb {
                gl += hist_g[k];
                hl += hist_h[k];
                for ml in [false, true] {
                    let (g_left, h_left) = if ml { (gl + gm, hl + hm) } else { (gl, hl) };
                    let (g_right, h_right) = (gs - g_left, hs - h_left);
                    if h_left < self.p.min_child_hess || h_right < self.p.min_child_hess {
                        continue;
                    }
                    let gain = g_left * g_left / (h_left + lambda)
                        + g_right * g_right / (h_right + lambda)
                        - parent;
                    if best.is_none_or(|b| gain > b.0) {
                        best = Some((gain, f, k, ml));
                    }
                    if hm == 0.0 {
                        break; // no missing values: both directions are the same split
                    }
                }
            }
        }
        let Some((gain, f, k, ml)) = best.filter(|b| b.0 > self.p.gamma) else {
            return self.leaf(gs, hs);
        };
        let col = &self.b.bins[f];
        let goes_left = |r: u32| {
            let b = col[r as usize] as usize;
            if b == 0 {
                ml
            } else {
                b <= k
            }
        };
        // Partition in place.
        let mut i = 0;
        for j in 0..rows.len() {
            if goes_left(rows[j]) {
                rows.swap(i, j);
                i += 1;
            }
        }
        let _ = gain;
        let me = self.nodes.len();
        self.nodes.push(Node {
            f: f as u32,
            t: self.b.cuts[f][k - 1],
            ml,
            l: 0,
            r: 0,
            v: 0.0,
        });
        let (left, right) = rows.split_at_mut(i);
        let l = self.grow(left, depth + 1);
        let r = self.grow(right, depth + 1);
        self.nodes[me].l = l;
        self.nodes[me].r = r;
        me as u32
    }
}

impl Model {
    /// Trains on a labelled table (threshold 0.5 until [`Model::train_cv`] picks one).
    pub fn train(t: &Table, p: &Params) -> Model {
        let derived = t.with_ratios(&p.ratios);
        let t = &derived;
        let y = t.y.as_ref().expect("labelled table");
        let n = t.rows();
        let pos = y.iter().filter(|&&v| v == 1).count().max(1) as f32;
        let neg = (n as f32 - pos).max(1.0);
        let base = (pos / neg).ln();
        let b = bin_table(t, p.bins);
        let mut f = vec![base; n];
        let mut g = vec![0f32; n];
        let mut h = vec![0f32; n];
        let mut rng = Rng(p.seed);
        let mut trees = Vec::with_capacity(p.rounds as usize);
        let nf = t.features.len();
        for _ in 0..p.rounds {
            for i in 0..n {
                let pr = sigmoid(f[i]);
                g[i] = pr - y[i] as f32;
                h[i] = (pr * (1.0 - pr)).max(1e-6);
            }
            let mut rows: Vec<u32> = (0..n as u32)
                .filter(|_| rng.unit() < p.row_sample)
                .collect();
            let mut features: Vec<usize> = (0..nf).filter(|_| rng.unit() < p.col_sample).collect();
            if features.is_empty() {
                features.push((rng.next() % nf as u64) as usize);
            }
            let mut grower = Grower {
                b: &b,
                g: &g,
                h: &h,
                p,
                features,
                nodes: Vec::new(),
            };
            grower.grow(&mut rows, 0);
            let tree = Tree {
                nodes: grower.nodes,
            };
            for (i, fi) in f.iter_mut().enumerate() {
                *fi += tree.predict(t.row(i));
            }
            trees.push(tree);
        }
        Model {
            format: "fanzha-gbdt-1".into(),
            features: t.features.clone(),
            base,
            trees,
            threshold: 0.5,
            params: p.clone(),
            cv: None,
        }
    }

    /// Trains with `folds`-fold cross-validation first: the out-of-fold scores choose the
    /// threshold that maximises macro-F1 and give honest metrics; the final model is then
    /// trained on all rows.
    pub fn train_cv(t: &Table, p: &Params, folds: usize) -> Model {
        let y = t.y.as_ref().expect("labelled table");
        let n = t.rows();
        let mut oof = vec![0f64; n];
        // Stratified folds: positives and negatives dealt round-robin in a seeded order.
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng(p.seed ^ 0xf01d);
        for i in (1..n).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let mut fold_of = vec![0usize; n];
        let (mut kp, mut kn) = (0, 0);
        for &i in &order {
            if y[i] == 1 {
                fold_of[i] = kp % folds;
                kp += 1;
            } else {
                fold_of[i] = kn % folds;
                kn += 1;
            }
        }
        for k in 0..folds {
            let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != k).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == k).collect();
            let m = Model::train(&t.subset(&train), p);
            let scores = m.score(&t.subset(&test));
            for (&i, s) in test.iter().zip(scores) {
                oof[i] = s;
            }
        }
        let threshold = metrics::best_threshold(&oof, y);
        let cv = metrics::report(&oof, y, threshold);
        let mut model = Model::train(t, p);
        model.threshold = threshold;
        model.cv = Some(cv);
        model
    }

    /// Checks a model read from a file: every split names one of its features, every child
    /// index is inside its tree and after its parent (so a walk always ends: no cycle), and
    /// every value is a number. A bad file is an error, never a panic or a hang.
    pub fn validate(&self) -> Result<(), String> {
        if !self.base.is_finite() {
            return Err("the base score is not a number".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {} is not a probability", self.threshold));
        }
        let features = self.features.len();
        for (ti, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(format!("tree {ti} has no nodes"));
            }
            for (ni, n) in tree.nodes.iter().enumerate() {
                let at = || format!("tree {ti} node {ni}");
                if n.f == LEAF {
                    if !n.v.is_finite() {
                        return Err(format!("{}: the leaf value is not a number", at()));
                    }
                    continue;
                }
                if n.f as usize >= features {
                    return Err(format!("{}: splits on feature {} of {features}", at(), n.f));
                }
                for child in [n.l, n.r] {
                    if child as usize >= tree.nodes.len() || child as usize <= ni {
                        return Err(format!(
                            "{}: child {child} is not a later node of the tree (of {})",
                            at(),
                            tree.nodes.len()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Fraud probability of one row (in the model's feature order).
    pub fn predict(&self, row: &[f32]) -> f64 {
        let raw = self.base + self.trees.iter().map(|t| t.predict(row)).sum::<f32>();
        sigmoid(raw) as f64
    }

    /// Scores every row of a table, matching its columns to the model's by name.
    pub fn score(&self, t: &Table) -> Vec<f64> {
        let p = t.with_ratios(&self.params.ratios).project(&self.features);
        (0..p.rows()).map(|i| self.predict(p.row(i))).collect()
    }

    /// Metrics on a labelled table at the model's threshold.
    pub fn evaluate(&self, t: &Table) -> Option<Report> {
        let y = t.y.as_ref()?;
        Some(metrics::report(&self.score(t), y, self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_nonlinear_rule_with_missing_values_and_is_deterministic() {
        let mut csv = String::from("id,a,b,label\n");
        let mut rng = Rng(1);
        for i in 0..2000 {
            let a = rng.unit() * 10.0;
            let b = rng.unit() * 10.0;
            let missing = i % 7 == 0;
            let label = ((a > 5.0) ^ (b > 5.0)) as u8;
            let a_text = if missing {
                String::new()
            } else {
                a.to_string()
            };
            csv.push_str(&format!("n{i},{a_text},{b},{label}\n"));
        }
        let t = Table::from_csv(csv.as_bytes(), true).unwrap();
        let p = Params {
            rounds: 150,
            ..Params::default()
        };
        let m = Model::train_cv(&t, &p, 3);
        let cv = m.cv.unwrap();
        assert!(cv.auc > 0.9, "{cv:?}");
        let m2 = Model::train_cv(&t, &p, 3);
        assert_eq!(m, m2, "same seed, same model");
        let json = serde_json::to_string(&m).unwrap();
        let back: Model = serde_json::from_str(&json).unwrap();
        assert_eq!(back.score(&t), m.score(&t));
        assert_eq!(back.validate(), Ok(()));
    }

    /// A model file with a feature index out of range, a child out of range or a cycle is
    /// refused by `validate` (scoring it would panic or never end).
    #[test]
    fn a_bad_model_file_is_refused() {
        let leaf = |v| Node {
            f: LEAF,
            t: 0.0,
            ml: false,
            l: 0,
            r: 0,
            v,
        };
        let split = |f, l, r| Node {
            f,
            t: 1.0,
            ml: true,
            l,
            r,
            v: 0.0,
        };
        let model = |nodes: Vec<Node>| Model {
            format: "fanzha-gbdt-1".into(),
            features: vec!["a".into(), "b".into()],
            base: 0.0,
            trees: vec![Tree { nodes }],
            threshold: 0.5,
            params: Params::default(),
            cv: None,
        };
        assert_eq!(
            model(vec![split(1, 1, 2), leaf(0.1), leaf(0.2)]).validate(),
            Ok(())
        );
        let e = model(vec![split(7, 1, 2), leaf(0.1), leaf(0.2)])
            .validate()
            .unwrap_err();
        assert!(e.contains("feature 7 of 2"), "{e}");
        let e = model(vec![split(0, 1, 9), leaf(0.1)])
            .validate()
            .unwrap_err();
        assert!(e.contains("child 9"), "{e}");
        let e = model(vec![split(0, 0, 1), leaf(0.1)])
            .validate()
            .unwrap_err();
        assert!(e.contains("child 0"), "a cycle: {e}");
        let e = model(vec![]).validate().unwrap_err();
        assert!(e.contains("no nodes"), "{e}");
        let e = model(vec![leaf(f32::NAN)]).validate().unwrap_err();
        assert!(e.contains("not a number"), "{e}");
    }
}
