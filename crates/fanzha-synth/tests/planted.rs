//! The monitor's quality target on the generator's planted patterns (issue: recall ≥ 0.95 at
//! ≤ 0.1 % false alerts on normal numbers; R15.3, R9.1, R4.4, R5.1).

use fanzha_detect::monitor::{default_rules, Monitor, Opening, OpeningMonitor};
use std::collections::HashSet;

#[test]
fn planted_fraud_numbers_are_found_and_ordinary_ones_are_left_alone() {
    let province = fanzha_synth::Province::generate(fanzha_synth::Spec::demo());
    let (records, planted) = fanzha_synth::call_records(&province, 15_000, 40, 11);
    let mut monitor = Monitor::new(default_rules());
    let mut alerts = Vec::new();
    let cdrs: Vec<_> = records.iter().map(|r| r.cdr()).collect();
    monitor.add_batch(&cdrs, &mut alerts);
    let flagged: HashSet<&str> = alerts.iter().map(|a| a.number.as_str()).collect();
    let planted_numbers: HashSet<&str> = planted.iter().map(|(n, _)| n.as_str()).collect();
    let caught = planted_numbers.intersection(&flagged).count();
    let recall = caught as f64 / planted_numbers.len() as f64;
    let normal = monitor.active_numbers() - planted_numbers.len();
    let false_alerts = flagged.difference(&planted_numbers).count();
    let false_rate = false_alerts as f64 / normal as f64;
    assert!(planted_numbers.len() >= 150, "{}", planted_numbers.len());
    assert!(recall >= 0.95, "recall {recall}");
    assert!(
        false_rate <= 0.001,
        "{false_alerts} false alerts of {normal}"
    );
    // Every planted kind is represented among the catches.
    for kind in [
        fanzha_synth::Planted::BurstDialler,
        fanzha_synth::Planted::SequentialScanner,
        fanzha_synth::Planted::ImeiSwapper,
        fanzha_synth::Planted::IotHumanLike,
    ] {
        assert!(
            planted
                .iter()
                .any(|(n, k)| *k == kind && flagged.contains(n.as_str())),
            "{kind:?}"
        );
    }
}

#[test]
fn card_farms_are_found_and_shops_are_not() {
    let province = fanzha_synth::Province::generate(fanzha_synth::Spec::demo());
    let day = fanzha_synth::agent_day(&province, 200, 10, 5);
    let mut m = OpeningMonitor::new(Default::default());
    let mut critical = HashSet::new();
    for (agent, holder, _, at) in &day.openings {
        if let Some(a) = m.add(&Opening {
            agent_id: agent,
            holder_hash: holder,
            at: *at,
        }) {
            if a.level == "critical" {
                critical.insert(a.agent_id);
            }
        }
    }
    let farms: HashSet<String> = day.farms.iter().cloned().collect();
    assert_eq!(critical, farms);
}
