//! Synthetic provinces and a day of traffic with planted attacks: what `fanzha demo` shows,
//! what the benchmarks load, what tests replay. Deterministic for a seed; no I/O — the
//! province comes out as ledger CSV text (for the real import path) or as ledger records
//! (for compiling a large snapshot quickly), the traffic as contract call JSON.

use chrono::TimeZone;
use fanzha_ledger::{Kind, Record};
use fanzha_model::synth::{nth_resident_id, uscc};
use fanzha_screen::wire::CallWire;
use serde_json::{json, Value};

/// SplitMix64: small, fast, seedable; plenty for synthetic data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How big a province to make.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Mobile subscribers (cards).
    pub subscribers: u64,
    /// IoT cards (13-digit).
    pub iot_cards: u64,
    /// Enterprise units.
    pub units: u64,
    /// Voice-line trunks (one per unit up to this many).
    pub voice_lines: u64,
    /// Outbound approvals.
    pub approvals: u64,
    /// Blocklist entries.
    pub blocklist: u64,
    /// Seed.
    pub seed: u64,
}

impl Spec {
    /// The demo's province: small enough to import in seconds.
    pub fn demo() -> Spec {
        Spec {
            subscribers: 20_000,
            iot_cards: 2_000,
            units: 400,
            voice_lines: 300,
            approvals: 300,
            blocklist: 2_000,
            seed: 2016,
        }
    }

    /// The benchmark province of the screening issue: 1 M subscribers, 10 k trunks, 50 k
    /// approvals, 100 k blocklist entries.
    pub fn bench() -> Spec {
        Spec {
            subscribers: 1_000_000,
            iot_cards: 50_000,
            units: 50_000,
            voice_lines: 10_000,
            approvals: 50_000,
            blocklist: 100_000,
            seed: 7,
        }
    }
}

/// Our operator's number blocks (national prefixes).
pub const OWN_BLOCKS: &[&str] = &[
    "135", "136", "137", "138", "139", "150", "1440", "1062", "1063", "4006", "4008",
];
/// Mobile segments of other networks (China Telecom), for interconnect traffic.
const OTHER_SEGMENTS: &[&str] = &["180", "181", "189", "133", "153"];
/// Police/government numbers notified by public security (fixed lines in Beijing).
const OFFICIAL_BASE: u64 = 1_062_300_000;

/// One subscriber card of the province.
#[derive(Clone, Debug)]
pub struct Card {
    /// National number.
    pub msisdn: String,
    /// Holder index (→ synthetic ID number); five cards at most per holder.
    pub holder: u64,
    /// active / suspended / terminated.
    pub state: &'static str,
    /// Roaming abroad (ISO code) or empty.
    pub roaming: &'static str,
    /// IoT card.
    pub iot: bool,
    /// verified / unverified.
    pub real_name: &'static str,
}

/// A voice line with what it may present.
#[derive(Clone, Debug)]
pub struct VoiceLine {
    /// Trunk id.
    pub id: String,
    /// Owner unit.
    pub owner: String,
    /// Contracted national prefix (`10623xxxx*`).
    pub prefix: String,
    /// The unit's 400 number presented over it.
    pub n400: String,
    /// Forwarding approved.
    pub forwarding: bool,
}

/// The generated province.
#[derive(Clone, Debug)]
pub struct Province {
    /// Spec it was made from.
    pub spec: Spec,
    /// Unit USCCs.
    pub units: Vec<String>,
    /// Cards.
    pub cards: Vec<Card>,
    /// Voice lines.
    pub voice_lines: Vec<VoiceLine>,
    /// 一号通 numbers.
    pub yihaotong: Vec<String>,
    /// Numbers ported out.
    pub ported_out: Vec<String>,
    /// Official numbers.
    pub official: Vec<String>,
    /// Blocklisted numbers.
    pub blocked: Vec<String>,
    /// Trunk ids of the other kinds.
    pub intl_trunks: Vec<String>,
    /// Interconnect trunk ids.
    pub ic_trunks: Vec<String>,
    /// Access trunk ids.
    pub access_trunks: Vec<String>,
}

impl Province {
    /// Generates a province.
    pub fn generate(spec: Spec) -> Province {
        let mut rng = Rng::new(spec.seed);
        let units: Vec<String> = (0..spec.units)
            .map(|i| uscc(110000 + (i % 16) as u32 * 100, 10_000_000 + i as u32))
            .collect();
        let mut cards = Vec::with_capacity((spec.subscribers + spec.iot_cards) as usize);
        let segs = ["135", "136", "137", "138", "139", "150"];
        for i in 0..spec.subscribers {
            let seg = segs[(i % 6) as usize];
            let state = match rng.below(1000) {
                0..=9 => "suspended",
                10..=14 => "terminated",
                _ => "active",
            };
            let roaming = if rng.below(500) == 0 {
                *rng.pick(&["KR", "JP", "US", "TH"])
            } else {
                ""
            };
            let real_name = if rng.below(100) < 3 {
                "unverified"
            } else {
                "verified"
            };
            cards.push(Card {
                msisdn: format!("{seg}{:08}", i / 6),
                holder: i / 3,
                state,
                roaming,
                iot: false,
                real_name,
            });
        }
        for i in 0..spec.iot_cards {
            cards.push(Card {
                msisdn: format!("1440{:09}", i),
                holder: i,
                state: "active",
                roaming: "",
                iot: true,
                real_name: "verified",
            });
        }
        let voice_lines = (0..spec.voice_lines.min(spec.units))
            .map(|i| VoiceLine {
                id: format!("vl-{i:05}"),
                owner: units[i as usize].clone(),
                prefix: format!("1062{:04}", i % 10_000),
                n400: format!("4006{:06}", i),
                forwarding: i % 4 == 0,
            })
            .collect();
        let yihaotong = (0..(spec.units / 10).max(1))
            .map(|i| format!("1063{:06}", i))
            .collect();
        let ported_out = (0..(spec.subscribers / 200).max(1))
            .map(|i| format!("139{:08}", 99_000_000 - i))
            .collect();
        let official = (0..200)
            .map(|i| format!("0{}", OFFICIAL_BASE + i * 7))
            .collect();
        let blocked = (0..spec.blocklist)
            .map(|i| format!("{}{:08}", OTHER_SEGMENTS[(i % 5) as usize], 50_000_000 + i))
            .collect();
        let n_other = (spec.voice_lines / 10).max(3);
        Province {
            units,
            cards,
            voice_lines,
            yihaotong,
            ported_out,
            official,
            blocked,
            intl_trunks: (0..n_other).map(|i| format!("intl-{i:04}")).collect(),
            ic_trunks: (0..n_other).map(|i| format!("ic-{i:04}")).collect(),
            access_trunks: (0..n_other).map(|i| format!("acc-{i:04}")).collect(),
            spec,
        }
    }

    /// Ledger CSV files in import order: (kind, text).
    pub fn csv(&self) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        let header = |k: Kind| format!("{}\n", k.columns().join(","));
        let mut s = header(Kind::Units);
        for (i, u) in self.units.iter().enumerate() {
            s += &format!(
                "{u},示例单位{i},enterprise,{},法人{i},北京\n",
                nth_resident_id(5_000_000 + i as u64)
            );
        }
        out.push((Kind::Units, s));
        let mut s = header(Kind::NumberBlocks);
        for b in OWN_BLOCKS {
            s += &format!("{b},operator\n");
        }
        out.push((Kind::NumberBlocks, s));
        let mut s = header(Kind::Subscribers);
        for c in &self.cards {
            if c.iot {
                let unit = &self.units[(c.holder % self.units.len() as u64) as usize];
                s += &format!("{},iot,,,{unit},北京,own_store,,id_reader,verified,active,,,2024-01-01T00:00:00+08:00,\n", c.msisdn);
            } else {
                let (id, verification) = if c.real_name == "verified" {
                    (nth_resident_id(c.holder), "id_reader")
                } else {
                    (String::new(), "none")
                };
                s += &format!(
                    "{},mobile,{id},用户{},,北京,own_store,,{verification},{},{},,,2024-01-01T00:00:00+08:00,{}\n",
                    c.msisdn, c.holder, c.real_name, c.state, c.roaming
                );
            }
        }
        out.push((Kind::Subscribers, s));
        let mut s = header(Kind::IotProfiles);
        for (i, c) in self.cards.iter().filter(|c| c.iot).enumerate() {
            let voice = i % 10 == 0;
            s += &format!(
                "{},{voice},true,{},10086;95*;{},\n",
                c.msisdn,
                imei(i as u64),
                "1062*"
            );
        }
        out.push((Kind::IotProfiles, s));
        let mut s = header(Kind::KeyServices);
        for v in &self.voice_lines {
            s += &format!("{},400,{},own_store,客服热线,active\n", v.n400, v.owner);
        }
        for (i, y) in self.yihaotong.iter().enumerate() {
            s += &format!(
                "{y},yihaotong,{},own_store,一号通,active\n",
                self.units[i % self.units.len()]
            );
        }
        out.push((Kind::KeyServices, s));
        let mut s = header(Kind::Trunks);
        for t in &self.intl_trunks {
            s += &format!("{t},international,,carrier-intl,,false,active\n");
        }
        for t in &self.ic_trunks {
            s += &format!("{t},interconnect,,telecom,,false,active\n");
        }
        for t in &self.access_trunks {
            s += &format!("{t},access,,,,false,active\n");
        }
        for v in &self.voice_lines {
            s += &format!(
                "{},voice_line,{},,{}*;{},{},active\n",
                v.id, v.owner, v.prefix, v.n400, v.forwarding
            );
        }
        out.push((Kind::Trunks, s));
        let mut s = header(Kind::OutboundApprovals);
        for v in self.voice_lines.iter().take(self.spec.approvals as usize) {
            s += &format!(
                "{},{},客户回访,09:00-12:00;13:30-18:00,20,100,2027-12-31T23:59:59+08:00\n",
                v.n400, v.n400
            );
        }
        out.push((Kind::OutboundApprovals, s));
        let mut s = header(Kind::PortedOut);
        for p in &self.ported_out {
            s += &format!("{p},中国联通\n");
        }
        out.push((Kind::PortedOut, s));
        let mut s = header(Kind::OfficialNumbers);
        for o in &self.official {
            s += &format!("{o},某公安局\n");
        }
        out.push((Kind::OfficialNumbers, s));
        let mut s = header(Kind::Blocklist);
        for b in &self.blocked {
            s += &format!("{b},police_notice,涉诈号码,2026-01-01T00:00:00+08:00,\n");
        }
        out.push((Kind::Blocklist, s));
        out
    }

    /// Ledger-shaped records (as a ledger would hold them after import) for compiling a
    /// snapshot without the import path: how the benchmark builds a 1 M-subscriber province.
    pub fn records(&self, kind: Kind) -> Vec<Record> {
        let rec = |key: String, subtype: Option<&str>, state: Option<&str>, body: Value| Record {
            kind,
            key,
            holder_hash: None,
            unit: None,
            subtype: subtype.map(str::to_string),
            state: state.map(str::to_string),
            body,
        };
        let e164 = |n: &str| fanzha_model::parse(n).map(|p| p.e164()).unwrap_or_default();
        match kind {
            Kind::NumberBlocks => OWN_BLOCKS.iter().map(|b| rec(b.to_string(), None, None, json!({}))).collect(),
            Kind::Subscribers => self
                .cards
                .iter()
                .map(|c| rec(e164(&c.msisdn), Some(if c.iot { "iot" } else { "mobile" }), Some(c.state), json!({"roaming": c.roaming})))
                .collect(),
            Kind::IotProfiles => self
                .cards
                .iter()
                .filter(|c| c.iot)
                .enumerate()
                .map(|(i, c)| {
                    rec(e164(&c.msisdn), None, None, json!({"voice": i % 10 == 0, "sms": true, "bound_imei": imei(i as u64), "allowed_callees": ["+8610086", "95*", "1062*"]}))
                })
                .collect(),
            Kind::KeyServices => self
                .voice_lines
                .iter()
                .map(|v| rec(e164(&v.n400), Some("400"), Some("active"), json!({})))
                .chain(self.yihaotong.iter().map(|y| rec(e164(y), Some("yihaotong"), Some("active"), json!({}))))
                .collect(),
            Kind::Trunks => {
                let mut v: Vec<Record> = Vec::new();
                for (ids, k) in [(&self.intl_trunks, "international"), (&self.ic_trunks, "interconnect"), (&self.access_trunks, "access")] {
                    v.extend(ids.iter().map(|t| rec(t.clone(), Some(k), Some("active"), json!({"contracted_numbers": []}))));
                }
                v.extend(self.voice_lines.iter().map(|l| {
                    rec(l.id.clone(), Some("voice_line"), Some("active"), json!({"contracted_numbers": [format!("{}*", l.prefix), e164(&l.n400)], "forwarding_approved": l.forwarding}))
                }));
                v
            }
            Kind::OutboundApprovals => self
                .voice_lines
                .iter()
                .take(self.spec.approvals as usize)
                .map(|l| {
                    rec(e164(&l.n400), Some("400"), None, json!({"allowed_callers": [e164(&l.n400)], "windows": ["09:00-12:00", "13:30-18:00"], "max_per_hour": 20, "max_per_day": 100, "valid_until": "2027-12-31T23:59:59+08:00"}))
                })
                .collect(),
            Kind::PortedOut => self.ported_out.iter().map(|p| rec(e164(p), None, None, json!({}))).collect(),
            Kind::OfficialNumbers => self.official.iter().map(|o| rec(e164(o), None, None, json!({}))).collect(),
            Kind::Blocklist => self.blocked.iter().map(|b| rec(e164(b), None, None, json!({"expires_at": ""}))).collect(),
            Kind::Units | Kind::Agents | Kind::Blacklist | Kind::ProtectedNumbers => Vec::new(),
        }
    }
}

/// A valid IMEI for device `i`.
pub fn imei(i: u64) -> String {
    let body = format!("{:014}", 35_000_000_000_000 + i * 7);
    let check = fanzha_model::imei::luhn_check_digit(body.as_bytes());
    format!("{body}{check}")
}

/// What a generated call is, for the demo's report and tests' expectations.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Ordinary traffic.
    Normal,
    /// Domestic number spoofed from abroad.
    SpoofedFromAbroad,
    /// Police/government number from abroad.
    FakePolice,
    /// Our own number arriving over interconnect.
    OwnNumberFromInterconnect,
    /// Voice line presenting numbers it does not own.
    UnauthenticatedVoiceLine,
    /// 400 number calling out beyond its quota.
    Over400Quota,
    /// IoT card making a voice call.
    IotVoiceCall,
    /// IoT card in another device.
    ImeiSwap,
    /// Withheld or missing caller number.
    HiddenCaller,
    /// Blocklisted fraud number.
    Blocklisted,
    /// Suspended card.
    SuspendedCard,
    /// 一号通 calling out.
    YihaotongOut,
}

/// The synthetic day: 2026-11-30T00:00:00+08:00.
pub const DAY: i64 = 1_795_968_000;

/// A day of traffic (2026-11-30, China time) with planted attacks: `calls` attempts.
pub fn traffic(p: &Province, calls: u64, seed: u64) -> Vec<(Scenario, CallWire)> {
    let mut rng = Rng::new(seed);
    let day_start: i64 = DAY;
    let mut out = Vec::with_capacity(calls as usize);
    let mobiles: Vec<&Card> = p
        .cards
        .iter()
        .filter(|c| !c.iot && c.state == "active")
        .collect();
    let suspended: Vec<&Card> = p
        .cards
        .iter()
        .filter(|c| !c.iot && c.state != "active")
        .collect();
    let iot: Vec<&Card> = p.cards.iter().filter(|c| c.iot).collect();
    // A few 400 lines call out far too often: their calls cluster in one morning hour.
    let hot_400: Vec<&VoiceLine> = p.voice_lines.iter().take(5).collect();
    for i in 0..calls {
        // Busy hours: most calls between 08:00 and 22:00.
        let secs = if rng.chance(0.85) {
            8 * 3600 + rng.below(14 * 3600)
        } else {
            rng.below(86_400)
        } as i64;
        let ts = day_start + secs;
        let mut c = CallWire {
            id: json!(format!("c{i:07}")),
            ts: fanzha_model::time::cst()
                .timestamp_opt(ts, 0)
                .single()
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            presentation: "allowed".into(),
            service: "voice".into(),
            callee: format!("139{:08}", rng.below(100_000_000)),
            ..CallWire::default()
        };
        let roll = rng.below(1000);
        let scenario = match roll {
            0..=599 => {
                let card = rng.pick(&mobiles);
                c.trunk = rng.pick(&p.access_trunks).clone();
                c.caller = card.msisdn.clone();
                Scenario::Normal
            }
            600..=749 => {
                c.trunk = rng.pick(&p.ic_trunks).clone();
                c.caller = format!("{}{:08}", rng.pick(OTHER_SEGMENTS), rng.below(40_000_000));
                if rng.chance(0.1) {
                    c.generic_number =
                        format!("{}{:08}", rng.pick(OTHER_SEGMENTS), rng.below(100_000_000));
                }
                Scenario::Normal
            }
            750..=799 => {
                c.trunk = rng.pick(&p.intl_trunks).clone();
                c.caller = rng
                    .pick(&[
                        "+442079460018",
                        "+85291234567",
                        "+886912345678",
                        "+14155550123",
                        "+6591234567",
                    ])
                    .to_string();
                if rng.chance(0.1) {
                    // Our subscribers roaming abroad call home: allowed.
                    if let Some(r) = p.cards.iter().find(|c| !c.roaming.is_empty()) {
                        c.caller = format!("+86{}", r.msisdn);
                    }
                }
                Scenario::Normal
            }
            800..=859 => {
                c.trunk = rng.pick(&p.voice_lines).id.clone();
                let vl = p
                    .voice_lines
                    .iter()
                    .find(|v| v.id == c.trunk)
                    .expect("line");
                c.caller = format!("0{}{:02}", vl.prefix, rng.below(100));
                Scenario::Normal
            }
            860..=889 => {
                c.trunk = rng.pick(&p.intl_trunks).clone();
                let forms = ["+86", "0086", "86", ""];
                c.caller = format!("{}{}", rng.pick(&forms), rng.pick(&mobiles).msisdn);
                Scenario::SpoofedFromAbroad
            }
            890..=899 => {
                c.trunk = rng.pick(&p.intl_trunks).clone();
                c.caller = format!("+86{}", &rng.pick(&p.official)[1..]);
                Scenario::FakePolice
            }
            900..=919 => {
                c.trunk = rng.pick(&p.ic_trunks).clone();
                c.caller = rng.pick(&mobiles).msisdn.clone();
                Scenario::OwnNumberFromInterconnect
            }
            920..=934 => {
                c.trunk = rng.pick(&p.voice_lines).id.clone();
                c.caller = format!(
                    "{}{:08}",
                    rng.pick(&["135", "180", "189"]),
                    rng.below(100_000_000)
                );
                Scenario::UnauthenticatedVoiceLine
            }
            935..=949 => {
                let vl = rng.pick(&hot_400);
                c.trunk = vl.id.clone();
                c.caller = vl.n400.clone();
                c.ts = fanzha_model::time::cst()
                    .timestamp_opt(day_start + 10 * 3600 + rng.below(3600) as i64, 0)
                    .single()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                Scenario::Over400Quota
            }
            950..=964 => {
                let card = rng.pick(&iot);
                c.trunk = rng.pick(&p.access_trunks).clone();
                c.caller = card.msisdn.clone();
                c.callee = "13800138000".into();
                Scenario::IotVoiceCall
            }
            965..=969 => {
                let card = rng.pick(&iot);
                c.trunk = rng.pick(&p.access_trunks).clone();
                c.caller = card.msisdn.clone();
                c.service = "sms".into();
                c.callee = "10086".into();
                c.imei = imei(9_000_000 + rng.below(1000));
                Scenario::ImeiSwap
            }
            970..=979 => {
                c.trunk = rng.pick(&p.ic_trunks).clone();
                if rng.chance(0.5) {
                    c.presentation = "restricted".into();
                    c.caller = format!("189{:08}", rng.below(40_000_000));
                }
                Scenario::HiddenCaller
            }
            980..=989 => {
                c.trunk = rng.pick(&p.ic_trunks).clone();
                c.caller = rng.pick(&p.blocked).clone();
                Scenario::Blocklisted
            }
            990..=994 if !suspended.is_empty() => {
                c.trunk = rng.pick(&p.access_trunks).clone();
                c.caller = rng.pick(&suspended).msisdn.clone();
                Scenario::SuspendedCard
            }
            _ => {
                let vl = rng.pick(&p.voice_lines);
                c.trunk = vl.id.clone();
                c.caller = rng.pick(&p.yihaotong).clone();
                Scenario::YihaotongOut
            }
        };
        out.push((scenario, c));
    }
    // Replays are in time order, like a day of signalling.
    out.sort_by(|a, b| a.1.ts.cmp(&b.1.ts));
    out
}

/// Fraud patterns planted in the call records.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Planted {
    /// Dozens of calls a minute.
    BurstDialler,
    /// Callees in an arithmetic run (号段扫描).
    SequentialScanner,
    /// One number in many devices (SIM box).
    ImeiSwapper,
    /// An IoT card calling people.
    IotHumanLike,
}

/// One generated outgoing call record (owned; [`CallRecord::cdr`] borrows it as the
/// monitor's input).
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// Start, unix seconds.
    pub start: i64,
    /// Caller, E.164.
    pub number: String,
    /// Callee, E.164.
    pub other: String,
    /// Seconds, 0 = unanswered.
    pub duration_s: u32,
    /// Device.
    pub imei: String,
    /// Cell.
    pub cell: String,
}

impl CallRecord {
    /// The record as the monitor reads it.
    pub fn cdr(&self) -> fanzha_detect::monitor::Cdr<'_> {
        fanzha_detect::monitor::Cdr {
            start: self.start,
            number: &self.number,
            other: &self.other,
            duration_s: self.duration_s,
            direction: fanzha_detect::monitor::Direction::Out,
            imei: Some(&self.imei),
            cell: Some(&self.cell),
            area: None,
            trunk: Some("acc-0000"),
        }
    }
}

/// A day's card openings through agents (R5.1), with planted card farms.
#[derive(Clone, Debug, Default)]
pub struct AgentDay {
    /// `agents` CSV (with header).
    pub agents_csv: String,
    /// `subscribers` CSV of the day's openings (with header), in time order.
    pub subscribers_csv: String,
    /// The openings, in the same order: (agent, holder ID number, msisdn, unix time).
    pub openings: Vec<(String, String, String, i64)>,
    /// The planted card farms' agent ids.
    pub farms: Vec<String>,
}

/// `shops` ordinary agents opening a few cards each through the day, and `farms` agents
/// opening cards for 45 different people within 45 minutes (the 养卡 pattern R5.1 targets).
/// Agents are registered under the province's units; holders are fresh synthetic persons.
pub fn agent_day(p: &Province, shops: usize, farms: usize, seed: u64) -> AgentDay {
    use fanzha_ledger::Kind;
    let mut rng = Rng::new(seed);
    let day: i64 = DAY;
    let mut out = AgentDay {
        agents_csv: format!("{}\n", Kind::Agents.columns().join(",")),
        subscribers_csv: format!("{}\n", Kind::Subscribers.columns().join(",")),
        ..AgentDay::default()
    };
    let mut openings = Vec::new();
    let mut person = 9_000_000u64;
    for a in 0..shops + farms {
        let id = format!("agent-{a:04}");
        let uscc = &p.units[a % p.units.len()];
        out.agents_csv += &format!("{id},代理商{a},{uscc},operator,active\n");
        if a < shops {
            // 3-25 cards over the shop's 10 opening hours; a family may open several.
            let n = 3 + rng.below(23);
            for _ in 0..n {
                let t = day + 9 * 3600 + rng.below(10 * 3600) as i64;
                if rng.below(4) != 0 {
                    person += 1;
                }
                openings.push((id.clone(), nth_resident_id(person), t));
            }
        } else {
            let t0 = day + 8 * 3600 + rng.below(10 * 3600) as i64;
            for i in 0..45 {
                person += 1;
                openings.push((id.clone(), nth_resident_id(person), t0 + i * 60));
            }
            out.farms.push(id);
        }
    }
    openings.sort_by_key(|o| o.2);
    let cst = fanzha_model::time::cst();
    for (k, (agent, holder, t)) in openings.into_iter().enumerate() {
        let msisdn = format!("1509{k:07}");
        let at = chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .with_timezone(&cst)
            .to_rfc3339();
        out.subscribers_csv += &format!(
            "{msisdn},mobile,{holder},新用户{k},,北京,agent,{agent},id_reader,verified,active,,,{at},\n"
        );
        out.openings.push((agent, holder, msisdn, t));
    }
    out
}

/// A day of call records (2026-11-30) of the province's active subscribers, with `per_kind`
/// numbers of each planted pattern. Returns the records in time order and the planted numbers.
pub fn call_records(
    p: &Province,
    normal_numbers: usize,
    per_kind: usize,
    seed: u64,
) -> (Vec<CallRecord>, Vec<(String, Planted)>) {
    let mut rng = Rng::new(seed);
    let day: i64 = DAY;
    let mobiles: Vec<&Card> = p
        .cards
        .iter()
        .filter(|c| !c.iot && c.state == "active")
        .collect();
    let iot: Vec<&Card> = p.cards.iter().filter(|c| c.iot).collect();
    let e164 = |n: &str| {
        fanzha_model::parse(n)
            .map(|x| x.e164())
            .unwrap_or_else(|_| n.to_string())
    };
    let mut out = Vec::new();
    let mut planted = Vec::new();
    let cdr =
        |start: i64, number: String, other: String, duration_s: u32, imei: String, cell: String| {
            CallRecord {
                start,
                number,
                other,
                duration_s,
                imei,
                cell,
            }
        };
    let n_planted = per_kind * 3;
    for (k, card) in mobiles.iter().take(normal_numbers + n_planted).enumerate() {
        let number = e164(&card.msisdn);
        if k < n_planted {
            let kind = [
                Planted::BurstDialler,
                Planted::SequentialScanner,
                Planted::ImeiSwapper,
            ][k % 3];
            let base = day + 9 * 3600 + rng.below(8 * 3600) as i64;
            match kind {
                Planted::BurstDialler => {
                    for i in 0..40 {
                        out.push(cdr(
                            base + i * 3,
                            number.clone(),
                            format!("+86139{:08}", rng.below(100_000_000)),
                            rng.below(5) as u32,
                            format!("imei-{k}"),
                            "c1".into(),
                        ));
                    }
                }
                Planted::SequentialScanner => {
                    let start = 10_000_000 + rng.below(80_000_000);
                    for i in 0..15 {
                        out.push(cdr(
                            base + i * 30,
                            number.clone(),
                            format!("+86139{:08}", start + i as u64),
                            0,
                            format!("imei-{k}"),
                            "c1".into(),
                        ));
                    }
                }
                _ => {
                    for i in 0..10 {
                        out.push(cdr(
                            base + i * 400,
                            number.clone(),
                            format!("+86139{:08}", rng.below(100_000_000)),
                            30 + rng.below(120) as u32,
                            format!("box-{k}-{i}"),
                            "c2".into(),
                        ));
                    }
                }
            }
            planted.push((number, kind));
        } else {
            let calls = 2 + rng.below(12);
            for _ in 0..calls {
                let t = day + 7 * 3600 + rng.below(15 * 3600) as i64;
                out.push(cdr(
                    t,
                    number.clone(),
                    format!(
                        "+86{}{:08}",
                        ["139", "138", "189"][rng.below(3) as usize],
                        rng.below(100_000_000)
                    ),
                    20 + rng.below(400) as u32,
                    format!("imei-n{k}"),
                    format!("c{}", rng.below(4)),
                ));
            }
        }
    }
    for card in iot.iter().take(per_kind) {
        let number = e164(&card.msisdn);
        let base = day + 10 * 3600 + rng.below(6 * 3600) as i64;
        for i in 0..12 {
            out.push(cdr(
                base + i * 600,
                number.clone(),
                format!("+86139{:08}", rng.below(100_000_000)),
                60 + rng.below(200) as u32,
                format!("iot-{}", card.holder),
                "c3".into(),
            ));
        }
        planted.push((number, Planted::IotHumanLike));
    }
    out.sort_by_key(|c| c.start);
    (out, planted)
}
