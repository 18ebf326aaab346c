//! `fanzha demo`: the README's main job. Builds a synthetic province in the embedded store
//! through the real ledger import, compiles the policy snapshot, replays a synthetic day of
//! traffic with planted attacks through screening (with the decision log), and prints what
//! was stopped and where it came from.

use crate::backend::StoreArgs;
use anyhow::Result;
use fanzha_policy::{Action, RuleConfig};
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::Entry;
use fanzha_screen::wire::VerdictWire;
use fanzha_screen::Engine;
use fanzha_synth::{traffic, Province, Scenario, Spec};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Call attempts to replay.
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    /// Subscribers in the synthetic province.
    #[arg(long, default_value_t = 20_000)]
    subscribers: u64,
    /// Seed of the province and the traffic.
    #[arg(long, default_value_t = 2016)]
    seed: u64,
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:>10} {{bar:40}} {{pos}}/{{len}} {{per_sec}}"
        ))
        .expect("template"),
    );
    b
}

pub fn run(args: DemoArgs, store: &StoreArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let demo_store = StoreArgs {
        data_dir: store.data_dir.join("demo"),
        database_url: store.database_url.clone(),
        ..store.clone()
    };
    let spec = Spec {
        subscribers: args.subscribers,
        seed: args.seed,
        ..Spec::demo()
    };
    let province = Province::generate(spec);
    let mut ledger = demo_store.ledger()?;
    let actor = fanzha_ledger::Actor {
        name: "fanzha-demo".into(),
        ..demo_store.actor()
    };
    println!(
        "fanzha demo — a synthetic province in {}",
        ledger.store().backend()
    );
    println!("\n1. Ledger (real-name and key-service rules on every row)");
    for (kind, csv) in province.csv() {
        let rows = csv.lines().count().saturating_sub(1) as u64;
        let b = bar(rows, kind.as_str());
        let t = Instant::now();
        let r = ledger.import_csv(kind, csv.as_bytes(), &actor, &mut |d| b.set_position(d))?;
        b.finish_and_clear();
        println!(
            "   {:<20} {:>7} accepted {:>5} refused   ({:.0} rows/s)",
            kind.as_str(),
            r.accepted,
            r.refused,
            rows as f64 / t.elapsed().as_secs_f64().max(1e-9)
        );
    }
    let t = Instant::now();
    let (snapshot, _) = compile(ledger.store().as_mut())?;
    let build_ms = t.elapsed().as_millis();
    println!(
        "\n2. Policy snapshot: generation {}, {} subscribers, compiled in {build_ms} ms",
        snapshot.generation,
        snapshot.subscriber_count()
    );
    let engine = Engine::new(snapshot, RuleConfig::default());
    let log = demo_store.decision_log(|_| {})?;
    let calls = traffic(&province, args.calls, args.seed + 1);
    let snap = engine.snapshot();
    let b = bar(calls.len() as u64, "screening");
    let mut by_rule: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_trunk: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_scenario: BTreeMap<Scenario, (u64, u64)> = BTreeMap::new();
    let (mut allowed, mut blocked, mut stripped) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    for (i, (scenario, wire)) in calls.iter().enumerate() {
        let call = wire.resolve(&snap)?;
        let v = engine.decide(&snap, &call);
        let e = by_scenario.entry(*scenario).or_default();
        e.0 += 1;
        match v.action {
            Action::Allow => allowed += 1,
            Action::Block => {
                blocked += 1;
                e.1 += 1;
                *by_trunk.entry(wire.trunk.clone()).or_default() += 1;
            }
        }
        stripped += v.strip_generic_number as u64;
        for r in v.rules.iter() {
            *by_rule.entry(r.as_str()).or_default() += 1;
        }
        log.log(Entry {
            ts: call.ts,
            generation: v.generation,
            call: serde_json::to_string(wire)?,
            verdict: serde_json::to_string(&VerdictWire::new(wire.id.clone(), &v))?,
        });
        if i % 4096 == 0 {
            b.set_position(i as u64);
        }
    }
    b.finish_and_clear();
    let screen_secs = t.elapsed().as_secs_f64();
    log.close()?;
    println!(
        "\n3. A day of traffic: {} calls screened in {:.2} s ({:.0} verdicts/s incl. JSON and logging)",
        calls.len(),
        screen_secs,
        calls.len() as f64 / screen_secs
    );
    println!("   allowed {allowed}, blocked {blocked}, generic number stripped {stripped}");
    println!("\n   matches by rule:");
    for (rule, n) in &by_rule {
        println!("   {rule:<28} {n:>8}");
    }
    println!("\n   planted scenario            calls  blocked");
    for (s, (n, b)) in &by_scenario {
        println!("   {:<26} {n:>7} {b:>8}", format!("{s:?}"));
    }
    let mut top: Vec<(&String, &u64)> = by_trunk.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("\n   top offending trunks:");
    for (t, n) in top.iter().take(5) {
        println!("   {t:<12} {n:>8} blocked");
    }
    // 4. The monitor over the day's call records, disposal through the ledger, and the
    //    snapshot that now blocks what was disposed of.
    let (records, planted) = fanzha_synth::call_records(&province, 15_000, 20, args.seed + 2);
    let planted_set: std::collections::HashMap<String, fanzha_synth::Planted> =
        planted.iter().cloned().collect();
    let mut monitor = fanzha_detect::monitor::Monitor::new(fanzha_detect::monitor::default_rules());
    let t = Instant::now();
    let mut flagged: std::collections::HashSet<String> = std::collections::HashSet::new();
    let (mut blocked_n, mut suspended_n, mut reverify_n, mut alerts_n) = (0u64, 0u64, 0u64, 0u64);
    let monitor_actor = fanzha_ledger::Actor {
        name: "fanzha-monitor".into(),
        ..demo_store.actor()
    };
    let auto_dispose = fanzha_monitor::AutoDispose::default();
    for r in &records {
        if let Some(a) = monitor.add(&r.cdr()) {
            alerts_n += 1;
            flagged.insert(a.number.clone());
            if !auto_dispose.allows(&a) {
                continue;
            }
            let evidence = serde_json::to_value(&a)?;
            let d = ledger.dispose(
                &a.number,
                a.action,
                &a.rules.join(","),
                &evidence,
                &monitor_actor,
            )?;
            blocked_n += d.blocklisted as u64;
            suspended_n += d.suspended as u64;
            reverify_n += d.reverify as u64;
        }
    }
    let monitor_secs = t.elapsed().as_secs_f64();
    // The day's openings through agents (R5.1): imported through the ledger's rules, watched
    // per agent, card farms suspended.
    let agent_day = fanzha_synth::agent_day(&province, 40, 3, args.seed + 3);
    let agents_import = ledger.import_csv(
        fanzha_ledger::Kind::Agents,
        agent_day.agents_csv.as_bytes(),
        &demo_store.actor(),
        &mut |_| {},
    )?;
    let openings_import = ledger.import_csv(
        fanzha_ledger::Kind::Subscribers,
        agent_day.subscribers_csv.as_bytes(),
        &demo_store.actor(),
        &mut |_| {},
    )?;
    let mut openings = fanzha_detect::monitor::OpeningMonitor::new(Default::default());
    let (mut farms_caught, mut agent_false, mut agents_suspended) = (0usize, 0usize, 0usize);
    for (agent, holder, msisdn, at) in &agent_day.openings {
        // New cards get the stricter new-card profile in the call monitor.
        monitor.note_activation(msisdn, *at);
        let Some(a) = openings.add(&fanzha_detect::monitor::Opening {
            agent_id: agent,
            holder_hash: holder,
            at: *at,
        }) else {
            continue;
        };
        if a.level == "critical" {
            if agent_day.farms.contains(&a.agent_id) {
                farms_caught += 1;
            } else {
                agent_false += 1;
            }
            let reason = format!("{} holders within the hour", a.distinct_holders);
            agents_suspended +=
                ledger.suspend_agent(&a.agent_id, &reason, &monitor_actor)? as usize;
        }
    }
    let caught = planted.iter().filter(|(n, _)| flagged.contains(n)).count();
    let false_alerts = flagged
        .iter()
        .filter(|n| !planted_set.contains_key(*n))
        .count();
    let normal = monitor.active_numbers().saturating_sub(planted.len());
    let (next, _) = compile(ledger.store().as_mut())?;
    let generation = next.generation;
    engine.swap(next);
    let snap = engine.snapshot();
    let mut blocked_after = 0;
    let disposed: Vec<&String> = planted
        .iter()
        .map(|(n, _)| n)
        .filter(|n| flagged.contains(*n))
        .collect();
    for (i, n) in disposed.iter().enumerate() {
        let wire = fanzha_screen::wire::CallWire {
            id: json!(format!("after-{i}")),
            ts: "2026-12-01T09:00:00+08:00".into(),
            trunk: province.access_trunks[0].clone(),
            caller: (*n).clone(),
            callee: "13912345678".into(),
            ..Default::default()
        };
        let call = wire.resolve(&snap)?;
        if engine.decide(&snap, &call).action == Action::Block {
            blocked_after += 1;
        }
    }
    println!(
        "\n4. Monitor: {} call records of {} numbers in {:.2} s; {alerts_n} alerts",
        records.len(),
        monitor.active_numbers(),
        monitor_secs
    );
    println!(
        "   planted fraud numbers caught: {caught}/{} (burst diallers, scanners, SIM boxes, IoT cards); false alerts: {false_alerts} of {normal} ordinary numbers",
        planted.len()
    );
    println!(
        "   recall {:.3} at a false-alert rate of {:.3} %",
        caught as f64 / planted.len().max(1) as f64,
        100.0 * false_alerts as f64 / normal.max(1) as f64
    );
    println!(
        "   agents: {} openings by {} agents imported ({} refused); card farms caught {farms_caught}/{} (false: {agent_false}), {agents_suspended} agents suspended (R5.1)",
        openings_import.accepted,
        agents_import.accepted,
        openings_import.refused,
        agent_day.farms.len()
    );
    println!("   disposal through the ledger: {blocked_n} blocklisted, {suspended_n} suspended, {reverify_n} sent to second real-name verification");
    println!("   snapshot generation {generation}: {blocked_after}/{} disposed numbers now blocked at the gateway", disposed.len());
    println!(
        "\n   decision log: {} (verify with `fanzha --data-dir {} decisions verify`)",
        demo_store.data_dir.join("decisions").display(),
        demo_store.data_dir.display()
    );
    println!("   finished in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "{}",
        json!({"calls": calls.len(), "allowed": allowed, "blocked": blocked, "stripped": stripped,
               "by_rule": by_rule, "build_ms": build_ms,
               "monitor": {"records": records.len(), "alerts": alerts_n, "planted": planted.len(), "caught": caught,
                           "false_alerts": false_alerts, "blocklisted": blocked_n, "suspended": suspended_n,
                           "reverify": reverify_n, "blocked_after_disposal": blocked_after,
                           "recall": caught as f64 / planted.len().max(1) as f64,
                           "false_alert_rate": false_alerts as f64 / normal.max(1) as f64,
                           "card_farms": agent_day.farms.len(), "card_farms_caught": farms_caught,
                           "agents_false_alerts": agent_false, "agents_suspended": agents_suspended},
               "top_trunks": top.iter().take(5).map(|(t, n)| json!({"trunk": t, "blocked": n})).collect::<Vec<_>>()})
    );
    Ok(ExitCode::SUCCESS)
}
