//! The policy snapshot: an immutable, compiled view of everything screening needs, keyed
//! by packed phone numbers. Built once per ledger generation (see `fanzha-screen`), shared
//! by reference, never mutated; the call path only reads it.

use fanzha_model::number::NationalPrefix;
use fanzha_model::PhoneNumber;
use rustc_hash::{FxHashMap, FxHashSet};

/// Trunk kinds (DESIGN.md trunks.kind).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum TrunkKind {
    /// International gateway.
    International,
    /// Inter-network gateway.
    Interconnect,
    /// Enterprise voice line (语音专线).
    VoiceLine,
    /// Our own access network (subscribers' cards).
    Access,
}

impl TrunkKind {
    /// From the contract's name.
    pub fn parse(s: &str) -> Option<TrunkKind> {
        Some(match s {
            "international" => TrunkKind::International,
            "interconnect" => TrunkKind::Interconnect,
            "voice_line" => TrunkKind::VoiceLine,
            "access" => TrunkKind::Access,
            _ => return None,
        })
    }
}

/// Numbers and national prefixes (`1062345*`): how contracted numbers, allowed callers,
/// IoT allow-lists and our number blocks are written.
#[derive(Clone, Debug, Default)]
pub struct PatternSet {
    exact: FxHashSet<u64>,
    /// Prefixes packed as value | len << 57.
    prefixes: FxHashSet<u64>,
    /// Bit `l` set when some prefix has `l` digits.
    lens: u32,
}

fn pack_prefix(p: NationalPrefix) -> u64 {
    p.value | ((p.len as u64) << 57)
}

impl PatternSet {
    /// Adds a full number.
    pub fn add_number(&mut self, n: PhoneNumber) {
        self.exact.insert(n.to_bits());
    }

    /// Adds a national prefix (Chinese numbers only).
    pub fn add_prefix(&mut self, p: NationalPrefix) {
        self.prefixes.insert(pack_prefix(p));
        self.lens |= 1 << p.len;
    }

    /// Adds a pattern as stored by the ledger: E.164 number or `digits*`. Returns false when
    /// it is neither.
    pub fn add_pattern(&mut self, pattern: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(p) => match NationalPrefix::parse(p) {
                Some(p) => {
                    self.add_prefix(p);
                    true
                }
                None => false,
            },
            None => match fanzha_model::parse(pattern) {
                Ok(n) => {
                    self.add_number(n);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether `n` is one of the numbers or starts with one of the prefixes.
    pub fn covers(&self, n: PhoneNumber) -> bool {
        if self.exact.contains(&n.to_bits()) {
            return true;
        }
        if self.lens == 0 || !n.is_chinese() {
            return false;
        }
        let len = n.national_len() as u32;
        let value = n.national_value();
        let mut lens = self.lens;
        while lens != 0 {
            let l = lens.trailing_zeros();
            lens &= lens - 1;
            if l > len {
                break;
            }
            let prefix = value / 10u64.pow(len - l);
            if self.prefixes.contains(&(prefix | ((l as u64) << 57))) {
                return true;
            }
        }
        false
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        (self.exact.capacity() + self.prefixes.capacity()) * 9
    }
}

/// Subscriber state and kind, one byte per card.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct SubscriberFlags(pub u8);

impl SubscriberFlags {
    /// Card suspended.
    pub const SUSPENDED: u8 = 1;
    /// Card terminated.
    pub const TERMINATED: u8 = 2;
    /// IoT card.
    pub const IOT: u8 = 4;
    /// Roaming abroad.
    pub const ROAMING: u8 = 8;

    /// Whether bit `b` is set.
    pub fn has(self, b: u8) -> bool {
        self.0 & b != 0
    }
}

/// An IoT card's function profile (R4.2).
#[derive(Clone, Debug, Default)]
pub struct IotProfile {
    /// Voice calls allowed.
    pub voice: bool,
    /// SMS allowed.
    pub sms: bool,
    /// Bound device: the first 14 IMEI digits as a number.
    pub bound_imei: Option<u64>,
    /// Callees allowed (empty = no restriction beyond the switches).
    pub allowed_callees: PatternSet,
}

/// Key-service types.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum KeyServiceType {
    /// 400 number.
    N400,
    /// 一号通.
    Yihaotong,
    /// 商务总机.
    Switchboard,
}

/// A gateway trunk.
#[derive(Clone, Debug)]
pub struct Trunk {
    /// Its id (for logs).
    pub id: Box<str>,
    /// Kind.
    pub kind: TrunkKind,
    /// Contracted numbers of a voice line.
    pub contracted: PatternSet,
    /// Whether forwarding is approved (R11.4).
    pub forwarding_approved: bool,
    /// Outbound approvals whose service is this trunk.
    pub approvals: Vec<u32>,
}

/// An outbound approval (R8.1).
#[derive(Clone, Debug)]
pub struct Approval {
    /// The ledger key of the approval (service number or trunk id), for carrying counters
    /// across snapshot generations.
    pub key: Box<str>,
    /// Numbers allowed to call out.
    pub callers: PatternSet,
    /// Windows as (start, end) seconds of the day, China time; empty = all day.
    pub windows: Vec<(u32, u32)>,
    /// Hourly quota.
    pub max_per_hour: Option<u32>,
    /// Daily quota.
    pub max_per_day: Option<u32>,
    /// Unix seconds after which the approval no longer holds.
    pub valid_until: Option<i64>,
}

/// The compiled policy.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Ledger generation it was compiled from (verdicts carry it).
    pub generation: u64,
    pub(crate) subscribers: FxHashMap<u64, SubscriberFlags>,
    pub(crate) iot_profiles: FxHashMap<u64, IotProfile>,
    pub(crate) own_blocks: PatternSet,
    pub(crate) ported_out: FxHashSet<u64>,
    pub(crate) official: FxHashSet<u64>,
    /// Blocklisted number → expiry (unix seconds, i64::MAX = none).
    pub(crate) blocklist: FxHashMap<u64, i64>,
    pub(crate) key_services: FxHashMap<u64, KeyServiceType>,
    pub(crate) trunk_index: FxHashMap<Box<str>, u32>,
    pub(crate) trunks: Vec<Trunk>,
    pub(crate) approvals: Vec<Approval>,
    /// Approvals whose service is a key-service number.
    pub(crate) approvals_by_number: FxHashMap<u64, Vec<u32>>,
}

impl Snapshot {
    /// An empty snapshot of `generation`.
    pub fn new(generation: u64) -> Snapshot {
        Snapshot {
            generation,
            ..Snapshot::default()
        }
    }

    /// Adds (or replaces) a subscriber card.
    pub fn add_subscriber(&mut self, n: PhoneNumber, flags: SubscriberFlags) {
        self.subscribers.insert(n.to_bits(), flags);
    }

    /// Marks a subscriber card suspended (a disposal applied ahead of the next compile);
    /// `false` when the number is not our subscriber.
    pub fn suspend_subscriber(&mut self, n: PhoneNumber) -> bool {
        match self.subscribers.get_mut(&n.to_bits()) {
            Some(flags) => {
                flags.0 |= SubscriberFlags::SUSPENDED;
                true
            }
            None => false,
        }
    }

    /// Adds an IoT profile.
    pub fn add_iot_profile(&mut self, n: PhoneNumber, p: IotProfile) {
        self.iot_profiles.insert(n.to_bits(), p);
    }

    /// Adds one of our number blocks.
    pub fn add_own_block(&mut self, p: NationalPrefix) {
        self.own_blocks.add_prefix(p);
    }

    /// Adds a number ported out.
    pub fn add_ported_out(&mut self, n: PhoneNumber) {
        self.ported_out.insert(n.to_bits());
    }

    /// Adds an official number.
    pub fn add_official(&mut self, n: PhoneNumber) {
        self.official.insert(n.to_bits());
    }

    /// Adds a blocklisted number with optional expiry.
    pub fn add_blocked(&mut self, n: PhoneNumber, expires: Option<i64>) {
        self.blocklist
            .insert(n.to_bits(), expires.unwrap_or(i64::MAX));
    }

    /// Adds a live key service.
    pub fn add_key_service(&mut self, n: PhoneNumber, t: KeyServiceType) {
        self.key_services.insert(n.to_bits(), t);
    }

    /// Adds a trunk; returns its index.
    pub fn add_trunk(&mut self, t: Trunk) -> u32 {
        let i = self.trunks.len() as u32;
        self.trunk_index.insert(t.id.clone(), i);
        self.trunks.push(t);
        i
    }

    /// Adds an approval whose service is the key-service number `service`, or the trunk
    /// `trunk_id` when `service` is `None`. Returns false when the trunk is unknown.
    pub fn add_approval(
        &mut self,
        a: Approval,
        service: Option<PhoneNumber>,
        trunk_id: &str,
    ) -> bool {
        let idx = self.approvals.len() as u32;
        match service {
            Some(n) => self
                .approvals_by_number
                .entry(n.to_bits())
                .or_default()
                .push(idx),
            None => match self.trunk_index.get(trunk_id) {
                Some(&t) => self.trunks[t as usize].approvals.push(idx),
                None => return false,
            },
        }
        self.approvals.push(a);
        true
    }

    /// The index of a trunk id, for [`crate::CallAttempt::trunk`].
    pub fn trunk(&self, id: &str) -> Option<u32> {
        self.trunk_index.get(id).copied()
    }

    /// The approvals (counters are indexed like this slice).
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// Number of subscriber cards.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Approximate memory held by the subscriber tables, for the ≤ 64 bytes/subscriber goal:
    /// hashbrown stores one control byte plus the (key, value) slot per bucket.
    pub fn subscriber_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, SubscriberFlags)>() + 1;
        self.subscribers.capacity() * slot * 8 / 7
    }
}
