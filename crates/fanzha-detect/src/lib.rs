//! Fraud-number detection models (R15.3, R9.1): a gradient-boosted decision-tree classifier
//! trained on a per-number feature table (the Sichuan per-user schema or the monitor's own
//! features), its evaluation metrics, and scoring.
//!
//! Pure: no I/O, no clock, randomness from a seed. Knows feature tables as CSV text; does
//! not know files, CDR streams or the ledger.

pub mod gbdt;
pub mod metrics;
pub mod monitor;

pub use gbdt::{sichuan_ratios, Model, Params};

use thiserror::Error;

/// A labelled (or unlabelled) feature table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Row ids (first column).
    pub ids: Vec<String>,
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// Row-major values; `NaN` = missing.
    pub x: Vec<f32>,
    /// Labels (0/1) when the table has a `label` column.
    pub y: Option<Vec<u8>>,
}

/// Why a feature table cannot be read.
#[derive(Debug, Error)]
pub enum TableError {
    /// No header / no id column.
    #[error(
        "the table needs a header row: an id column first, a label column and numeric features"
    )]
    Header,
    /// CSV-level error.
    #[error("line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What.
        message: String,
    },
    /// A value that is not a number.
    #[error("line {line}, column {column:?}: {value:?} is not a number")]
    NotNumeric {
        /// Line.
        line: u64,
        /// Column name.
        column: String,
        /// Value.
        value: String,
    },
    /// A label other than 0/1.
    #[error("line {line}: label {value:?} is not 0 or 1")]
    Label {
        /// Line.
        line: u64,
        /// Value.
        value: String,
    },
    /// No rows.
    #[error("the table has no rows")]
    Empty,
}

impl Table {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Row `i`'s values.
    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.features.len();
        &self.x[i * n..(i + 1) * n]
    }

    /// Reads CSV text: first column the id, a `label` column (optional when `need_label` is
    /// false), every other column a number (empty = missing).
    pub fn from_csv(data: &[u8], need_label: bool) -> Result<Table, TableError> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(data);
        let headers = r.headers().map_err(|_| TableError::Header)?.clone();
        if headers.len() < 2 {
            return Err(TableError::Header);
        }
        let label_col = headers.iter().position(|h| h.trim() == "label");
        if need_label && label_col.is_none() {
            return Err(TableError::Header);
        }
        let feature_cols: Vec<usize> = (1..headers.len())
            .filter(|&i| Some(i) != label_col)
            .collect();
        let mut t = Table {
            features: feature_cols
                .iter()
                .map(|&i| headers[i].trim().to_string())
                .collect(),
            y: label_col.map(|_| Vec::new()),
            ..Table::default()
        };
        for rec in r.records() {
            let rec = rec.map_err(|e| TableError::Csv {
                line: e.position().map(|p| p.line()).unwrap_or(0),
                message: e.to_string(),
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            t.ids.push(rec.get(0).unwrap_or("").to_string());
            for &c in &feature_cols {
                let v = rec.get(c).unwrap_or("").trim();
                let x = if v.is_empty() {
                    f32::NAN
                } else {
                    v.parse::<f32>().map_err(|_| TableError::NotNumeric {
                        line,
                        column: headers[c].to_string(),
                        value: v.to_string(),
                    })?
                };
                t.x.push(x);
            }
            if let (Some(c), Some(y)) = (label_col, t.y.as_mut()) {
                let v = rec.get(c).unwrap_or("").trim();
                y.push(match v {
                    "0" | "0.0" => 0,
                    "1" | "1.0" => 1,
                    _ => {
                        return Err(TableError::Label {
                            line,
                            value: v.to_string(),
                        })
                    }
                });
            }
        }
        if t.ids.is_empty() {
            return Err(TableError::Empty);
        }
        Ok(t)
    }

    /// The same rows with columns reordered to `names` (absent ones missing): how a model
    /// reads a table whose columns differ from its training table.
    pub fn project(&self, names: &[String]) -> Table {
        let idx: Vec<Option<usize>> = names
            .iter()
            .map(|n| self.features.iter().position(|f| f == n))
            .collect();
        let mut x = Vec::with_capacity(self.rows() * names.len());
        for r in 0..self.rows() {
            let row = self.row(r);
            x.extend(idx.iter().map(|i| i.map(|i| row[i]).unwrap_or(f32::NAN)));
        }
        Table {
            ids: self.ids.clone(),
            features: names.to_vec(),
            x,
            y: self.y.clone(),
        }
    }

    /// The table with ratio columns `num/den` appended for every pair whose two columns
    /// exist (missing or zero denominators give a missing value). Trees split on one feature
    /// at a time, so ratios of behaviour counts are worth giving them directly.
    pub fn with_ratios(&self, pairs: &[(String, String)]) -> Table {
        let idx: Vec<(usize, usize)> = pairs
            .iter()
            .filter_map(|(a, b)| {
                Some((
                    self.features.iter().position(|f| f == a)?,
                    self.features.iter().position(|f| f == b)?,
                ))
            })
            .collect();
        if idx.is_empty() {
            return self.clone();
        }
        let mut features = self.features.clone();
        features.extend(
            idx.iter()
                .map(|&(a, b)| format!("{}/{}", self.features[a], self.features[b])),
        );
        let mut x = Vec::with_capacity(self.rows() * features.len());
        for r in 0..self.rows() {
            let row = self.row(r);
            x.extend_from_slice(row);
            x.extend(idx.iter().map(|&(a, b)| {
                let (n, d) = (row[a], row[b]);
                if n.is_nan() || d.is_nan() || d == 0.0 {
                    f32::NAN
                } else {
                    n / d
                }
            }));
        }
        Table {
            ids: self.ids.clone(),
            features,
            x,
            y: self.y.clone(),
        }
    }

    /// The subset of rows `rows`.
    pub fn subset(&self, rows: &[usize]) -> Table {
        let mut x = Vec::with_capacity(rows.len() * self.features.len());
        for &r in rows {
            x.extend_from_slice(self.row(r));
        }
        Table {
            ids: rows.iter().map(|&r| self.ids[r].clone()).collect(),
            features: self.features.clone(),
            x,
            y: self
                .y
                .as_ref()
                .map(|y| rows.iter().map(|&r| y[r]).collect()),
        }
    }
}
