//! Screening rules as a pure function: `evaluate(&Snapshot, &CallAttempt, &mut Counters,
//! &RuleConfig) -> Verdict` (R8, R11, R12, R4.2, R1.1, R15.3).
//!
//! Knows the rules, their order and codes. Does not know the ledger, any database, any wire
//! format (JSON, SIP), the clock or threads: callers parse, time-stamp and synchronise.
//! Evaluating allocates nothing.

pub mod counters;
pub mod rule;
pub mod snapshot;

pub use counters::Counters;
pub use rule::{RuleId, RuleSet};
pub use snapshot::{
    Approval, IotProfile, KeyServiceType, PatternSet, Snapshot, SubscriberFlags, Trunk, TrunkKind,
};

use counters::china_second_of_day;
use fanzha_model::number::NumberKind;
use fanzha_model::PhoneNumber;

/// The caller number as presented, after normalisation.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Caller {
    /// No number at all (R11.3 cli-missing).
    Empty,
    /// Characters that are no number form.
    Unparseable,
    /// A number; `valid` by its plan.
    Number {
        /// The normalised number.
        number: PhoneNumber,
        /// Valid in its numbering plan.
        valid: bool,
        /// Its class in the plan (classified once, here, not again by the rules).
        kind: NumberKind,
    },
}

impl Caller {
    /// From what the network presented (any form).
    pub fn from_presented(s: &str) -> Caller {
        if s.trim().is_empty() {
            return Caller::Empty;
        }
        match fanzha_model::parse(s) {
            Ok(number) => {
                let info = number.classify();
                Caller::Number {
                    number,
                    valid: info.valid,
                    kind: info.kind,
                }
            }
            Err(_) => Caller::Unparseable,
        }
    }

    /// The number, valid or not.
    pub fn number(self) -> Option<PhoneNumber> {
        match self {
            Caller::Number { number, .. } => Some(number),
            _ => None,
        }
    }
}

/// Voice or SMS.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Service {
    /// A voice call.
    Voice,
    /// A short message.
    Sms,
}

/// A call attempt, normalised and resolved against a snapshot's trunks.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct CallAttempt {
    /// Unix seconds (the call's own time; never the wall clock).
    pub ts: i64,
    /// Index of the ingress trunk in the snapshot ([`Snapshot::trunk`]).
    pub trunk: u32,
    /// Presented caller.
    pub caller: Caller,
    /// Presentation restricted (`Privacy: id`).
    pub restricted: bool,
    /// Called number, when it parses.
    pub callee: Option<PhoneNumber>,
    /// A generic number (通用号码) is present.
    pub has_generic_number: bool,
    /// A diversion (call forwarding) is present.
    pub has_diversion: bool,
    /// Voice or SMS.
    pub service: Service,
    /// The device's IMEI as its first 14 digits, when the call carries one.
    pub imei: Option<u64>,
}

/// Allow or block.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Route on (SIP 302).
    Allow,
    /// Reject with the verdict's code.
    Block,
}

/// The decision for one call attempt.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    /// Allow or block.
    pub action: Action,
    /// SIP status: 302 on allow, else the first blocking rule's code.
    pub code: u16,
    /// Every rule that matched, in contract order (shadowed ones included).
    pub rules: RuleSet,
    /// The matched rules that are in shadow mode (reported, not enforced).
    pub shadow: RuleSet,
    /// Whether the generic number is to be removed.
    pub strip_generic_number: bool,
    /// Snapshot generation the verdict was made on.
    pub generation: u64,
}

/// Operator configuration of the rules.
#[derive(Copy, Clone, Debug, Default)]
pub struct RuleConfig {
    /// Rules on trial: reported but never blocking.
    pub shadow: RuleSet,
    /// This screening node among the replicas behind one SBC: quotas (R8.1) are split
    /// between them so that together they never allow more than the approval.
    pub replica: Replica,
}

/// A node's share of every outbound quota (R8.1) when `count` replicas screen the same
/// traffic, each counting only what it allowed: replica `index` may allow
/// `max / count` calls, plus one of the remainder when `index < max % count`. The shares
/// add up to the quota exactly, so the replicas together never exceed it without sharing
/// counters on the call path; the price is that a replica whose share is used up refuses
/// while another's is not (the SBC spreads a service's calls evenly, or routes each
/// service to one replica, to avoid that).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// This replica, from 0.
    pub index: u32,
    /// How many replicas there are.
    pub count: u32,
}

impl Default for Replica {
    fn default() -> Replica {
        Replica { index: 0, count: 1 }
    }
}

impl Replica {
    /// This replica's share of a quota of `max`.
    pub fn share(self, max: u32) -> u32 {
        let count = self.count.max(1);
        max / count + u32::from(self.index % count < max % count)
    }
}

/// Decides one call attempt. Counts it against its outbound approval when allowed.
pub fn evaluate(
    s: &Snapshot,
    call: &CallAttempt,
    counters: &mut Counters,
    config: &RuleConfig,
) -> Verdict {
    let trunk = &s.trunks[call.trunk as usize];
    let kind = trunk.kind;
    let mut rules = RuleSet::EMPTY;
    let number = call.caller.number();
    let bits = number.map(PhoneNumber::to_bits);
    let intl = kind == TrunkKind::International;
    let inter = kind == TrunkKind::Interconnect;
    let voice_line = kind == TrunkKind::VoiceLine;
    let access = kind == TrunkKind::Access;
    let subscriber = bits.and_then(|b| s.subscribers.get(&b)).copied();

    // R11.3 — presentation and validity.
    if (intl || inter || voice_line) && call.caller == Caller::Empty {
        rules.insert(RuleId::CliMissing);
    }
    if (intl || inter) && call.restricted {
        rules.insert(RuleId::CliWithheld);
    }
    if (intl || inter || voice_line)
        && matches!(
            call.caller,
            Caller::Unparseable | Caller::Number { valid: false, .. }
        )
    {
        rules.insert(RuleId::CliInvalid);
    }
    // R11.1 — domestic and official numbers from abroad.
    if let (true, Some(n)) = (intl, number) {
        let roaming = subscriber.is_some_and(|f| f.has(SubscriberFlags::ROAMING));
        if n.is_chinese() && !roaming {
            rules.insert(RuleId::IntlDomesticCli);
        }
        if s.official.contains(&n.to_bits()) {
            rules.insert(RuleId::IntlSpoofedOfficial);
        }
    }
    // R11.6 — our own numbers arriving from another network.
    if let (true, Some(n)) = (inter, number) {
        if s.own_blocks.covers(n) && !s.ported_out.contains(&n.to_bits()) {
            rules.insert(RuleId::InterconnectOwnCli);
        }
    }
    // R11.2 — generic number stripped.
    if (intl || inter) && call.has_generic_number {
        rules.insert(RuleId::GenericNumberStrip);
    }
    // R12.1 / R8.2 — voice lines present only their contracted, our own numbers.
    if let (true, Some(n)) = (voice_line, number) {
        if !trunk.contracted.covers(n) {
            rules.insert(RuleId::VoiceLineUnauthenticated);
        }
        if !s.own_blocks.covers(n) {
            rules.insert(RuleId::ForeignNumberOnTrunk);
        }
    }
    // R8.1 — outbound from key services and over voice lines.
    let mut counted_approval = None;
    if let (true, Some(n)) = (voice_line || access, number) {
        let ks = s.key_services.get(&n.to_bits()).copied();
        if ks == Some(KeyServiceType::Yihaotong) {
            rules.insert(RuleId::YihaotongOutbound);
        }
        let needs_approval = matches!(
            ks,
            Some(KeyServiceType::N400) | Some(KeyServiceType::Switchboard)
        ) || (voice_line
            && n.is_chinese()
            && matches!(
                call.caller,
                Caller::Number {
                    kind: NumberKind::Service,
                    ..
                }
            ));
        counted_approval = outbound(
            s,
            trunk,
            n,
            call.ts,
            needs_approval,
            counters,
            config.replica,
            &mut rules,
        );
    }
    // R11.4 — forwarding on voice lines.
    if voice_line && call.has_diversion && !trunk.forwarding_approved {
        rules.insert(RuleId::ForwardingNotApproved);
    }
    // R4.2 — IoT cards, R1.1 — suspended cards (our access network).
    if let (true, Some(flags), Some(b)) = (access, subscriber, bits) {
        if flags.has(SubscriberFlags::IOT) {
            let profile = s.iot_profiles.get(&b);
            let voice = profile.is_some_and(|p| p.voice);
            let sms = profile.is_some_and(|p| p.sms);
            if call.service == Service::Voice && !voice {
                rules.insert(RuleId::IotVoiceDisabled);
            }
            if call.service == Service::Sms && !sms {
                rules.insert(RuleId::IotSmsDisabled);
            }
            if let Some(p) = profile {
                if !p.allowed_callees.is_empty()
                    && !call.callee.is_some_and(|c| p.allowed_callees.covers(c))
                {
                    rules.insert(RuleId::IotCalleeNotAllowed);
                }
                if let (Some(bound), Some(used)) = (p.bound_imei, call.imei) {
                    if bound != used {
                        rules.insert(RuleId::IotImeiMismatch);
                    }
                }
            }
        }
        if flags.has(SubscriberFlags::SUSPENDED) || flags.has(SubscriberFlags::TERMINATED) {
            rules.insert(RuleId::SubscriberSuspended);
        }
    }
    // R15.3 — blocklist, any ingress.
    if let Some(&expires) = bits.and_then(|b| s.blocklist.get(&b)) {
        if call.ts < expires {
            rules.insert(RuleId::NumberBlocklisted);
        }
    }

    let shadow = rules.intersection(config.shadow);
    let code = rules
        .iter()
        .filter(|r| !shadow.contains(*r))
        .find_map(RuleId::code);
    let verdict = Verdict {
        action: if code.is_some() {
            Action::Block
        } else {
            Action::Allow
        },
        code: code.unwrap_or(302),
        rules,
        shadow,
        strip_generic_number: rules.contains(RuleId::GenericNumberStrip)
            && !shadow.contains(RuleId::GenericNumberStrip),
        generation: s.generation,
    };
    if let (Action::Allow, Some(i)) = (verdict.action, counted_approval) {
        counters.get_mut(i).record(call.ts);
    }
    verdict
}

/// R8.1 checks; returns the approval the call counts against when allowed.
#[allow(clippy::too_many_arguments)] // the call's facts, its counters and the quota share
fn outbound(
    s: &Snapshot,
    trunk: &Trunk,
    n: PhoneNumber,
    ts: i64,
    needs_approval: bool,
    counters: &Counters,
    replica: Replica,
    rules: &mut RuleSet,
) -> Option<u32> {
    let by_number = s
        .approvals_by_number
        .get(&n.to_bits())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let covering = by_number
        .iter()
        .chain(trunk.approvals.iter())
        .copied()
        .filter(|&i| s.approvals[i as usize].callers.covers(n));
    let sod = china_second_of_day(ts);
    let mut any_valid = false;
    let mut in_window: Option<u32> = None;
    for i in covering {
        let a = &s.approvals[i as usize];
        if a.valid_until.is_some_and(|until| ts > until) {
            continue;
        }
        any_valid = true;
        if a.windows.is_empty() || a.windows.iter().any(|&w| in_window_of(w, sod)) {
            in_window = Some(i);
            break;
        }
    }
    if !any_valid {
        if needs_approval {
            rules.insert(RuleId::OutboundNotApproved);
        }
        return None;
    }
    let Some(i) = in_window else {
        rules.insert(RuleId::OutboundOutsideWindow);
        return None;
    };
    let a = &s.approvals[i as usize];
    let c = counters.get(i);
    let over_hour = a
        .max_per_hour
        .is_some_and(|m| c.in_last_hour(ts) >= replica.share(m));
    let over_day = a
        .max_per_day
        .is_some_and(|m| c.on_day(ts) >= replica.share(m));
    if over_hour || over_day {
        rules.insert(RuleId::OutboundOverFrequency);
    }
    Some(i)
}

/// Windows include their start and exclude their end; a window may cross midnight.
fn in_window_of((start, end): (u32, u32), sod: u32) -> bool {
    match start.cmp(&end) {
        std::cmp::Ordering::Less => start <= sod && sod < end,
        std::cmp::Ordering::Greater => sod >= start || sod < end,
        std::cmp::Ordering::Equal => true,
    }
}

#[cfg(test)]
mod tests;
