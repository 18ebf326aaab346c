//! The screening rules, in the contract's order (DESIGN.md), with their requirement and
//! default SIP code; and a bitset of rules that a verdict carries without allocating.

/// One screening rule. The discriminant is the rule's position in the contract's order.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum RuleId {
    /// Empty caller number (international, interconnect, voice_line). R11.3.
    CliMissing = 0,
    /// Presentation restricted on international or interconnect ingress. R11.3.
    CliWithheld,
    /// Caller number not valid in its numbering plan. R11.3.
    CliInvalid,
    /// International ingress presenting a domestic number (roaming subscribers excepted). R11.1.
    IntlDomesticCli,
    /// International ingress presenting an official (police/government) number. R11.1.
    IntlSpoofedOfficial,
    /// Interconnect ingress presenting one of our own numbers not ported out. R11.6.
    InterconnectOwnCli,
    /// Generic number on international/interconnect ingress: stripped, not blocked. R11.2.
    GenericNumberStrip,
    /// Voice line presenting a number outside its contracted numbers. R12.1.
    VoiceLineUnauthenticated,
    /// Voice line presenting a number outside our number blocks. R8.2.
    ForeignNumberOnTrunk,
    /// 400 / switchboard (or 95/96 over a voice line) without a covering approval. R8.1.
    OutboundNotApproved,
    /// Approved, but outside every approved window. R8.1.
    OutboundOutsideWindow,
    /// Approved, but the hourly or daily quota is used up. R8.1.
    OutboundOverFrequency,
    /// A 一号通 number presented as caller. R8.1.
    YihaotongOutbound,
    /// Voice line call with a diversion but no forwarding approval. R11.4.
    ForwardingNotApproved,
    /// IoT card making a voice call its profile disables. R4.2.
    IotVoiceDisabled,
    /// IoT card sending SMS its profile disables. R4.2.
    IotSmsDisabled,
    /// IoT card calling outside its allow-list. R4.2.
    IotCalleeNotAllowed,
    /// IoT card in a device other than its bound IMEI. R4.2.
    IotImeiMismatch,
    /// Caller card suspended or terminated (access ingress). R1.1.
    SubscriberSuspended,
    /// Caller on the blocklist (any ingress). R15.3.
    NumberBlocklisted,
}

impl RuleId {
    /// Every rule in contract order.
    pub const ALL: [RuleId; 20] = [
        RuleId::CliMissing,
        RuleId::CliWithheld,
        RuleId::CliInvalid,
        RuleId::IntlDomesticCli,
        RuleId::IntlSpoofedOfficial,
        RuleId::InterconnectOwnCli,
        RuleId::GenericNumberStrip,
        RuleId::VoiceLineUnauthenticated,
        RuleId::ForeignNumberOnTrunk,
        RuleId::OutboundNotApproved,
        RuleId::OutboundOutsideWindow,
        RuleId::OutboundOverFrequency,
        RuleId::YihaotongOutbound,
        RuleId::ForwardingNotApproved,
        RuleId::IotVoiceDisabled,
        RuleId::IotSmsDisabled,
        RuleId::IotCalleeNotAllowed,
        RuleId::IotImeiMismatch,
        RuleId::SubscriberSuspended,
        RuleId::NumberBlocklisted,
    ];

    /// The contract's rule ID.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::CliMissing => "cli-missing",
            RuleId::CliWithheld => "cli-withheld",
            RuleId::CliInvalid => "cli-invalid",
            RuleId::IntlDomesticCli => "intl-domestic-cli",
            RuleId::IntlSpoofedOfficial => "intl-spoofed-official",
            RuleId::InterconnectOwnCli => "interconnect-own-cli",
            RuleId::GenericNumberStrip => "generic-number-strip",
            RuleId::VoiceLineUnauthenticated => "voice-line-unauthenticated",
            RuleId::ForeignNumberOnTrunk => "foreign-number-on-trunk",
            RuleId::OutboundNotApproved => "outbound-not-approved",
            RuleId::OutboundOutsideWindow => "outbound-outside-window",
            RuleId::OutboundOverFrequency => "outbound-over-frequency",
            RuleId::YihaotongOutbound => "yihaotong-outbound",
            RuleId::ForwardingNotApproved => "forwarding-not-approved",
            RuleId::IotVoiceDisabled => "iot-voice-disabled",
            RuleId::IotSmsDisabled => "iot-sms-disabled",
            RuleId::IotCalleeNotAllowed => "iot-callee-not-allowed",
            RuleId::IotImeiMismatch => "iot-imei-mismatch",
            RuleId::SubscriberSuspended => "subscriber-suspended",
            RuleId::NumberBlocklisted => "number-blocklisted",
        }
    }

    /// Parses a contract rule ID.
    pub fn parse(s: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The requirement it enforces.
    pub fn requirement(self) -> &'static str {
        match self {
            RuleId::CliMissing | RuleId::CliWithheld | RuleId::CliInvalid => "R11.3",
            RuleId::IntlDomesticCli | RuleId::IntlSpoofedOfficial => "R11.1",
            RuleId::InterconnectOwnCli => "R11.6",
            RuleId::GenericNumberStrip => "R11.2",
            RuleId::VoiceLineUnauthenticated => "R12.1",
            RuleId::ForeignNumberOnTrunk => "R8.2",
            RuleId::OutboundNotApproved
            | RuleId::OutboundOutsideWindow
            | RuleId::OutboundOverFrequency
            | RuleId::YihaotongOutbound => "R8.1",
            RuleId::ForwardingNotApproved => "R11.4",
            RuleId::IotVoiceDisabled
            | RuleId::IotSmsDisabled
            | RuleId::IotCalleeNotAllowed
            | RuleId::IotImeiMismatch => "R4.2",
            RuleId::SubscriberSuspended => "R1.1",
            RuleId::NumberBlocklisted => "R15.3",
        }
    }

    /// The SIP status a blocking match answers; `None` for rules that only strip.
    pub fn code(self) -> Option<u16> {
        match self {
            RuleId::GenericNumberStrip => None,
            RuleId::CliWithheld => Some(433),
            RuleId::IntlDomesticCli
            | RuleId::IntlSpoofedOfficial
            | RuleId::InterconnectOwnCli
            | RuleId::NumberBlocklisted => Some(608),
            _ => Some(403),
        }
    }
}

/// A set of rules, iterated in contract order. `Copy`, no allocation.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct RuleSet(u32);

impl RuleSet {
    /// The empty set.
    pub const EMPTY: RuleSet = RuleSet(0);

    /// Adds a rule.
    pub fn insert(&mut self, r: RuleId) {
        self.0 |= 1 << r as u8;
    }

    /// Whether it holds `r`.
    pub fn contains(self, r: RuleId) -> bool {
        self.0 & (1 << r as u8) != 0
    }

    /// Whether empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as bits (bit `r as u8` = rule `r`), for compact records.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The set of [`RuleSet::bits`]; bits of no rule are dropped.
    pub fn from_bits(bits: u32) -> RuleSet {
        RuleSet(bits & ((1u32 << RuleId::ALL.len()) - 1))
    }

    /// Rules in both.
    pub fn intersection(self, other: RuleSet) -> RuleSet {
        RuleSet(self.0 & other.0)
    }

    /// Rules in contract order.
    pub fn iter(self) -> impl Iterator<Item = RuleId> {
        RuleId::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<RuleId> for RuleSet {
    fn from_iter<I: IntoIterator<Item = RuleId>>(iter: I) -> RuleSet {
        let mut s = RuleSet::EMPTY;
        for r in iter {
            s.insert(r);
        }
        s
    }
}
