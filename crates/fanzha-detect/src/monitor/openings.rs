//! Bulk opening by agents (R5.1): an agent that opens many cards for many different ID
//! holders in a short time is the classic source of fraud cards (养卡). Fed with the
//! ledger's subscriber openings; per agent, a sliding window of openings and a sketch of the
//! distinct holders in it.

use serde::Serialize;

/// One card opening, as the ledger records it.
#[derive(Clone, Copy, Debug)]
pub struct Opening<'a> {
    /// The agent (channel `agent`); openings through own stores are not watched here.
    pub agent_id: &'a str,
    /// The holder's keyed hash (never the ID number itself).
    pub holder_hash: &'a str,
    /// Activation, unix seconds.
    pub at: i64,
}

/// Thresholds: distinct holders served within `window_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct OpeningRule {
    /// The window.
    pub window_s: i64,
    /// Distinct holders at which an agent is watched.
    pub warning: u32,
    /// Distinct holders at which an agent is suspended.
    pub critical: u32,
}

impl Default for OpeningRule {
    /// A genuine shop opens a few cards an hour; 20 different people in an hour is a
    /// warning, 40 is a card farm.
    fn default() -> Self {
        OpeningRule {
            window_s: 3600,
            warning: 20,
            critical: 40,
        }
    }
}

/// An agent alert.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AgentAlert {
    /// The agent.
    pub agent_id: String,
    /// The opening that crossed the threshold (unix seconds; RFC 3339 China time in JSON).
    #[serde(serialize_with = "super::china_time")]
    pub ts: i64,
    /// warning | critical.
    pub level: &'static str,
    /// Distinct holders in the window.
    pub distinct_holders: u32,
    /// Openings in the window.
    pub openings: u32,
    /// watch | suspend_agent.
    pub action: &'static str,
}

#[derive(Default)]
struct AgentState {
    /// Openings in the window: (time, holder hash), oldest first; bounded by the
    /// critical threshold's worth of distinct holders plus repeats.
    recent: std::collections::VecDeque<(i64, u64)>,
    alerted: u8,
}

/// Per-agent windows of openings.
pub struct OpeningMonitor {
    rule: OpeningRule,
    agents: rustc_hash::FxHashMap<String, AgentState>,
}

impl OpeningMonitor {
    /// A monitor with `rule`.
    pub fn new(rule: OpeningRule) -> OpeningMonitor {
        OpeningMonitor {
            rule,
            agents: Default::default(),
        }
    }

    /// Agents with state.
    pub fn agents(&self) -> usize {
        self.agents.len()
    }

    /// Adds an opening (in time order per agent); an alert when the agent reaches a new level.
    pub fn add(&mut self, o: &Opening<'_>) -> Option<AgentAlert> {
        let agent = match self.agents.get_mut(o.agent_id) {
            Some(a) => a,
            None => self.agents.entry(o.agent_id.to_string()).or_default(),
        };
        while agent
            .recent
            .front()
            .is_some_and(|&(t, _)| t <= o.at - self.rule.window_s)
        {
            agent.recent.pop_front();
        }
        // Bounded: beyond four times the critical count the verdict cannot change.
        if agent.recent.len() >= 4 * self.rule.critical.max(1) as usize {
            agent.recent.pop_front();
        }
        agent
            .recent
            .push_back((o.at, super::state::h64(o.holder_hash)));
        let mut holders: Vec<u64> = agent.recent.iter().map(|&(_, h)| h).collect();
        holders.sort_unstable();
        holders.dedup();
        let distinct = holders.len() as u32;
        let level = if distinct >= self.rule.critical {
            2
        } else if distinct >= self.rule.warning {
            1
        } else {
            return None;
        };
        if agent.alerted >= level {
            return None;
        }
        agent.alerted = level;
        Some(AgentAlert {
            agent_id: o.agent_id.to_string(),
            ts: o.at,
            level: if level == 2 { "critical" } else { "warning" },
            distinct_holders: distinct,
            openings: agent.recent.len() as u32,
            action: if level == 2 { "suspend_agent" } else { "watch" },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_farm_is_caught_and_a_busy_shop_is_not() {
        let mut m = OpeningMonitor::new(OpeningRule::default());
        // A shop: 30 cards a day for 15 people, spread over 10 hours.
        let mut alerts = Vec::new();
        for i in 0..30i64 {
            let holder = format!("h{}", i % 15);
            alerts.extend(m.add(&Opening {
                agent_id: "shop",
                holder_hash: &holder,
                at: i * 1200,
            }));
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        // A farm: 45 different people in 45 minutes.
        for i in 0..45i64 {
            let holder = format!("p{i}");
            alerts.extend(m.add(&Opening {
                agent_id: "farm",
                holder_hash: &holder,
                at: 100_000 + i * 60,
            }));
        }
        let levels: Vec<(&str, u32)> = alerts
            .iter()
            .map(|a| (a.level, a.distinct_holders))
            .collect();
        assert_eq!(levels, vec![("warning", 20), ("critical", 40)]);
        assert_eq!(alerts[1].action, "suspend_agent");
    }

    #[test]
    fn the_window_slides() {
        let mut m = OpeningMonitor::new(OpeningRule {
            window_s: 600,
            warning: 3,
            critical: 5,
        });
        // One new holder every 5 minutes: never 3 within 10 minutes.
        for i in 0..20i64 {
            let holder = format!("p{i}");
            assert_eq!(
                m.add(&Opening {
                    agent_id: "a",
                    holder_hash: &holder,
                    at: i * 300
                }),
                None
            );
        }
    }
}
