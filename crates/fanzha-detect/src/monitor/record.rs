//! Call records as the monitor reads them: borrowed from the input line, so parsing a
//! record allocates nothing. A [`Layout`] maps a header row to the columns a format needs,
//! once per file.

/// Direction of a record relative to the monitored number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The number called.
    Out,
    /// The number was called.
    In,
    /// Forwarded.
    Forwarded,
}

/// One call record, borrowed from its input.
#[derive(Clone, Debug, PartialEq)]
pub struct Cdr<'a> {
    /// Start, unix seconds.
    pub start: i64,
    /// The monitored number as written (E.164 or any written form; or an opaque id such as
    /// a Sichuan hash).
    pub number: &'a str,
    /// The other party as written.
    pub other: &'a str,
    /// Seconds; 0 = unanswered.
    pub duration_s: u32,
    /// Direction.
    pub direction: Direction,
    /// Device IMEI (device key), if known.
    pub imei: Option<&'a str>,
    /// Cell, or city (Sichuan), if known.
    pub cell: Option<&'a str>,
    /// A finer area inside `cell` (Sichuan county), if known.
    pub area: Option<&'a str>,
    /// Trunk, if known.
    pub trunk: Option<&'a str>,
}

/// Input formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `start,caller,callee,duration_s,trunk,imei,cell` (RFC 3339 start).
    Native,
    /// Sichuan `train_voc`: phone_no_m, opposite_no_m, calltype_id, start_datetime,
    /// call_dur, city_name, county_name, imei_m.
    Sichuan,
    /// JSON lines with the native fields.
    JsonLines,
}

impl Format {
    /// The columns of the format, in the order [`Layout`] keeps them.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Format::Native | Format::JsonLines => &[
                "start",
                "caller",
                "callee",
                "duration_s",
                "trunk",
                "imei",
                "cell",
            ],
            Format::Sichuan => &[
                "phone_no_m",
                "opposite_no_m",
                "calltype_id",
                "start_datetime",
                "call_dur",
                "city_name",
                "county_name",
                "imei_m",
            ],
        }
    }

    /// Columns a record cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Format::Native | Format::JsonLines => &["start", "caller", "duration_s"],
            Format::Sichuan => &["phone_no_m", "calltype_id", "start_datetime", "call_dur"],
        }
    }
}

/// Where each column of a format sits in a file's rows.
#[derive(Clone, Debug)]
pub struct Layout {
    format: Format,
    /// Per [`Format::columns`] entry: its index in a row.
    index: [Option<usize>; 8],
}

/// The most bytes one field of a call record may hold (numbers, hashes, cells, trunks).
pub const MAX_RECORD_FIELD: usize = 256;

impl Layout {
    /// The layout of `header` (names trimmed, case-insensitive). Errors name every required
    /// column that is missing.
    pub fn new<'h>(
        format: Format,
        header: impl IntoIterator<Item = &'h str>,
    ) -> Result<Layout, String> {
        let names: Vec<String> = header
            .into_iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let mut index = [None; 8];
        for (slot, col) in index.iter_mut().zip(format.columns()) {
            *slot = names.iter().position(|n| n == col);
        }
        let layout = Layout { format, index };
        let missing: Vec<&str> = format
            .required()
            .iter()
            .copied()
            .filter(|c| layout.column(c).is_none())
            .collect();
        if missing.is_empty() {
            Ok(layout)
        } else {
            Err(format!("missing column(s): {}", missing.join(", ")))
        }
    }

    /// The layout of a row with exactly the format's columns, in order.
    pub fn canonical(format: Format) -> Layout {
        let mut index = [None; 8];
        for (i, slot) in index.iter_mut().take(format.columns().len()).enumerate() {
            *slot = Some(i);
        }
        Layout { format, index }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    fn column(&self, name: &str) -> Option<usize> {
        let i = self.format.columns().iter().position(|c| *c == name)?;
        self.index[i]
    }

    /// Parses one row (fields as split from the line).
    pub fn parse<'a>(&self, fields: &[&'a str]) -> Result<Cdr<'a>, String> {
        if let Some(long) = fields.iter().find(|f| f.len() > MAX_RECORD_FIELD) {
            return Err(format!(
                "a field is {} bytes long; at most {MAX_RECORD_FIELD} are accepted",
                long.len()
            ));
        }
        let get = |slot: usize| {
            self.index[slot]
                .and_then(|i| fields.get(i))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let req = |slot: usize| {
            get(slot).ok_or_else(|| format!("{} is missing", self.format.columns()[slot]))
        };
        let seconds = |slot: usize| -> Result<u32, String> {
            let v = req(slot)?;
            match v.parse::<u32>() {
                Ok(n) => Ok(n),
                Err(_) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f.clamp(0.0, u32::MAX as f64) as u32)
                    .ok_or_else(|| format!("{} is not a number", self.format.columns()[slot])),
            }
        };
        let time = |slot: usize| fanzha_model::time::parse_unix(req(slot)?);
        match self.format {
            Format::Native | Format::JsonLines => Ok(Cdr {
                start: time(0)?,
                number: req(1)?,
                other: get(2).unwrap_or(""),
                duration_s: seconds(3)?,
                direction: Direction::Out,
                trunk: get(4),
                imei: get(5),
                cell: get(6),
                area: None,
            }),
            Format::Sichuan => {
                let direction = match req(2)? {
                    "1" => Direction::Out,
                    "2" => Direction::In,
                    "3" => Direction::Forwarded,
                    other => return Err(format!("calltype_id {other:?} is not 1, 2 or 3")),
                };
                Ok(Cdr {
                    start: time(3)?,
                    number: req(0)?,
                    other: get(1).unwrap_or(""),
                    duration_s: seconds(4)?,
                    direction,
                    cell: get(5),
                    area: get(6),
                    imei: get(7),
                    trunk: None,
                })
            }
        }
    }
}

/// Splits `data` (CSV text with a header row) into records of `format` and hands them to
/// `records` in batches, in file order; a bad record goes to `bad` with its line number
/// (header = line 1). Plain lines are split in place (no allocation); a line with a quote
/// goes through the `csv` crate. Errs when the header lacks a required column.
pub fn read_csv(
    data: &[u8],
    format: Format,
    records: impl FnMut(&[Cdr<'_>]),
    bad: impl FnMut(u64, String),
) -> Result<(), String> {
    read_csv_until(data, format, i64::MAX, records, bad)
}

/// The reason a record dated after `not_after` is refused.
pub fn future_record(start: i64, not_after: i64) -> String {
    format!(
        "start {start} is {} s after the service's clock allows: a record from the future would \
         reset the windows of every number, so it is refused",
        start.saturating_sub(not_after)
    )
}

/// [`read_csv`], refusing records that start after `not_after` (unix seconds): a feed's
/// records are trusted no further than the service's clock (plus the skew it allows).
pub fn read_csv_until(
    data: &[u8],
    format: Format,
    not_after: i64,
    mut records: impl FnMut(&[Cdr<'_>]),
    mut bad: impl FnMut(u64, String),
) -> Result<(), String> {
    const BATCH: usize = 256;
    let mut lines = data.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| "the header is not UTF-8".to_string())?;
    let layout = Layout::new(format, header.trim_end_matches('\r').split(','))?;
    let mut fields: Vec<&str> = Vec::with_capacity(16);
    let mut batch: Vec<Cdr<'_>> = Vec::with_capacity(BATCH);
    for (i, line) in lines.enumerate() {
        let line_no = i as u64 + 2;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            bad(line_no, "the line is not UTF-8".into());
            continue;
        };
        if line.contains(&b'"') {
            records(&batch);
            batch.clear();
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line);
            let mut rec = csv::StringRecord::new();
            match r.read_record(&mut rec) {
                Ok(true) => {
                    let owned: Vec<&str> = rec.iter().collect();
                    match layout.parse(&owned) {
                        Ok(c) if c.start > not_after => {
                            bad(line_no, future_record(c.start, not_after))
                        }
                        Ok(c) => records(&[c]),
                        Err(why) => bad(line_no, why),
                    }
                }
                Ok(false) => {}
                Err(e) => bad(line_no, e.to_string()),
            }
            continue;
        }
        fields.clear();
        fields.extend(text.split(','));
        match layout.parse(&fields) {
            Ok(c) if c.start > not_after => bad(line_no, future_record(c.start, not_after)),
            Ok(c) => batch.push(c),
            Err(why) => bad(line_no, why),
        }
        if batch.len() == BATCH {
            records(&batch);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        records(&batch);
    }
    Ok(())
}

/// One JSON-lines record (an object with the native fields; numbers may be JSON numbers).
pub fn parse_json_record<'a>(
    value: &'a serde_json::Value,
    scratch: &'a mut Vec<String>,
) -> Result<Cdr<'a>, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| "a record must be a JSON object".to_string())?;
    let columns = Format::JsonLines.columns();
    scratch.clear();
    for c in columns {
        scratch.push(match obj.get(*c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
    }
    let fields: Vec<&str> = scratch.iter().map(String::as_str).collect();
    Layout::canonical(Format::JsonLines).parse(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_rows_in_any_column_order() {
        let data = b"callee,caller,start,duration_s\n+8613900000001,+8613500000001,2026-11-29T10:00:00+08:00,0\n";
        let mut got = Vec::new();
        read_csv(
            data,
            Format::Native,
            |b| {
                got.extend(
                    b.iter()
                        .map(|c| (c.number.to_string(), c.other.to_string(), c.start)),
                )
            },
            |line, why| panic!("{line}: {why}"),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![(
                "+8613500000001".into(),
                "+8613900000001".into(),
                1_795_917_600
            )]
        );
    }

    #[test]
    fn quoted_lines_and_bad_rows_are_reported_by_line() {
        let data = "start,caller,callee,duration_s,trunk,imei,cell\n\
                    \"2026-11-29T10:00:00+08:00\",\"+86 135 0000 0001\",x,5,,,\n\
                    yesterday,+8613500000001,x,5,,,\n\
                    2026-11-29T10:00:00+08:00,,x,5,,,\n\
                    2026-11-29T10:00:00+08:00,+8613500000001,x,five,,,\n";
        let (mut good, mut errors) = (Vec::new(), Vec::new());
        read_csv(
            data.as_bytes(),
            Format::Native,
            |b| good.extend(b.iter().map(|c| c.number.to_string())),
            |line, why| errors.push((line, why)),
        )
        .unwrap();
        assert_eq!(good, ["+86 135 0000 0001"]);
        assert_eq!(errors[0].0, 3);
        assert!(errors[0].1.contains("RFC 3339"));
        assert_eq!(errors[1], (4, "caller is missing".into()));
        assert_eq!(errors[2], (5, "duration_s is not a number".into()));
    }

    #[test]
    fn a_field_past_its_limit_is_a_bad_record() {
        let long = "1".repeat(MAX_RECORD_FIELD + 1);
        let data = format!("start,caller,callee,duration_s\n2026-11-30T10:00:00+08:00,{long},13900000000,0\n2026-11-30T10:00:01+08:00,13500000001,13900000000,0\n");
        let (mut ok, mut bad) = (0, Vec::new());
        read_csv(
            data.as_bytes(),
            Format::Native,
            |b| ok += b.len(),
            |line, why| bad.push((line, why)),
        )
        .unwrap();
        assert_eq!(ok, 1);
        assert_eq!(bad[0].0, 2);
        assert!(bad[0].1.contains("at most 256"), "{bad:?}");
    }

    #[test]
    fn a_header_without_required_columns_is_refused() {
        let err = read_csv(b"caller,callee\n", Format::Native, |_| {}, |_, _| {}).unwrap_err();
        assert_eq!(err, "missing column(s): start, duration_s");
    }

    #[test]
    fn sichuan_directions() {
        let data = "phone_no_m,opposite_no_m,calltype_id,start_datetime,call_dur,city_name,county_name,imei_m\n\
                    abc,def,2,2019-12-01 08:00:00,12,成都,武侯区,i1\n\
                    abc,def,4,2019-12-01 08:00:00,12,成都,武侯区,i1\n";
        let (mut got, mut errors) = (Vec::new(), Vec::new());
        read_csv(
            data.as_bytes(),
            Format::Sichuan,
            |b| {
                got.extend(b.iter().map(|c| {
                    (
                        c.direction,
                        c.cell.map(str::to_string),
                        c.area.map(str::to_string),
                    )
                }))
            },
            |line, why| errors.push((line, why)),
        )
        .unwrap();
        assert_eq!(
            got,
            [(Direction::In, Some("成都".into()), Some("武侯区".into()))]
        );
        assert_eq!(errors, [(3, "calltype_id \"4\" is not 1, 2 or 3".into())]);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut head = b"start,caller,callee,duration_s\n".to_vec();
            head.extend_from_slice(&data);
            let _ = read_csv(&head, Format::Native, |_| {}, |_, _| {});
            let _ = read_csv(&data, Format::Sichuan, |_| {}, |_, _| {});
        }
    }
}
