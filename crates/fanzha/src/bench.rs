//! `fanzha bench …`: the shipped benchmarks whose last output line is one JSON object.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_ledger::{Kind, Ledger, Store};
use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Import N generated subscribers (validate, hash, encrypt, five-card check, history
    /// event) into a fresh ledger: SQLite in a temporary directory, or PostgreSQL with
    /// --database-url (in a fresh schema). Last line: {"rows","rows_per_sec","backend"}.
    Import {
        /// Rows to generate.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
    /// Open-loop SIP load: INVITEs at a fixed rate (sendmmsg/recvmmsg, unique Call-IDs,
    /// callers and trunks varied over a synthetic province). Last line:
    /// {"offered_per_sec","answered_per_sec","loss_ratio","p50_us","p99_us","p999_us"}.
    Sip {
        /// The redirect server (fanzha serve, Kamailio, …).
        #[arg(long)]
        target: std::net::SocketAddr,
        /// INVITEs per second.
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 5)]
        duration: u64,
    },
    /// Batch monitor throughput: parse and process a generated native CDR file (in memory)
    /// on one core. Last line: {"cdr_per_sec","active_numbers","bytes_per_number"}.
    Monitor {
        /// Records to generate.
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
        /// Distinct calling numbers.
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u64,
    },
    /// Compile a generated province (1 M subscribers, 10 k trunks, 50 k approvals, 100 k
    /// blocklist entries) and screen a realistic call mix on one core. Last line:
    /// {"verdicts_per_sec","p50_ns","p99_ns","subscribers","build_ms","bytes_per_subscriber"}.
    Screen {
        /// Subscribers in the province.
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: u64,
        /// Call attempts in the mix.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
    },
    /// `POST /v1/screen` over HTTP on loopback with a gateway token (authentication by the
    /// guard) against the same handler with no guard, alternated in one run. Last line:
    /// {"requests","connections","baseline_per_sec","authenticated_per_sec","ratio"}.
    Http(crate::bench_http::HttpArgs),
}

pub fn run(cmd: BenchCommand, store: &StoreArgs) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Import { rows } => import(rows, store),
        BenchCommand::Monitor { records, numbers } => monitor_bench(records, numbers),
        BenchCommand::Screen { subscribers, calls } => screen(subscribers, calls),
        BenchCommand::Sip {
            target,
            rate,
            duration,
        } => sip_load(target, rate, duration),
        BenchCommand::Http(args) => crate::bench_http::run(args),
    }
}

/// A subscribers CSV of `rows` verified mobile cards, three per holder.
pub fn subscribers_csv(rows: u64) -> String {
    let mut s = String::with_capacity(rows as usize * 160);
    s.push_str(
        fanzha_ledger::Kind::Subscribers
            .columns()
            .join(",")
            .as_str(),
    );
    s.push('\n');
    for i in 0..rows {
        let id = fanzha_model::synth::nth_resident_id(i / 3);
        let seg = ["138", "139", "150", "186", "189"][(i % 5) as usize];
        s.push_str(&format!(
            "{seg}{:08},mobile,{id},测试用户,,北京,own_store,,id_reader,verified,active,4600{:011},,2024-05-01T10:00:00+08:00,\n",
            i / 5,
            i
        ));
    }
    s
}

fn import(rows: u64, store: &StoreArgs) -> Result<ExitCode> {
    let tmp = std::env::temp_dir().join(format!("fanzha-bench-{}", std::process::id()));
    let schema = format!("bench_{}", std::process::id());
    let (backend, cleanup): (Box<dyn Store>, Option<std::path::PathBuf>) = match &store.database_url
    {
        Some(url) => (
            Box::new(fanzha_ledger_postgres::PgStore::connect_in_schema(
                url,
                Some(&schema),
            )?),
            None,
        ),
        None => {
            std::fs::create_dir_all(&tmp)?;
            let s = fanzha_ledger_sqlite::SqliteStore::open(&tmp.join("ledger.sqlite"))
                .context("open bench ledger")?;
            (Box::new(s), Some(tmp.clone()))
        }
    };
    let name = backend.backend();
    let mut ledger = Ledger::new(backend, fanzha_ledger::PiiVault::new(&[9u8; 64])?);
    eprintln!("generating {rows} subscribers …");
    let csv = subscribers_csv(rows);
    let actor = store.actor();
    eprintln!("importing into {name} …");
    let start = Instant::now();
    let report = ledger.import_csv(Kind::Subscribers, csv.as_bytes(), &actor, &mut |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    drop(ledger);
    if let Some(dir) = cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The benchmark's ledger is gone afterwards, in PostgreSQL too (a million rows is ~1 GB).
    if let Some(url) = &store.database_url {
        fanzha_ledger_postgres::PgStore::drop_schema(url, &schema)
            .context("drop the benchmark's schema")?;
    }
    anyhow::ensure!(
        report.refused == 0,
        "bench rows were refused: {:?}",
        report.refusals.first()
    );
    println!(
        "{}",
        json!({"rows": report.accepted, "rows_per_sec": (report.accepted as f64 / secs).round(), "backend": name, "seconds": secs})
    );
    Ok(ExitCode::SUCCESS)
}

fn screen(subscribers: u64, calls: u64) -> Result<ExitCode> {
    use fanzha_policy::{evaluate, Counters, RuleConfig};
    use fanzha_synth::{traffic, Province, Spec};
    eprintln!("generating a province of {subscribers} subscribers …");
    let spec = Spec {
        subscribers,
        ..Spec::bench()
    };
    let province = Province::generate(spec);
    let records: std::collections::HashMap<Kind, Vec<fanzha_ledger::Record>> = Kind::ALL
        .iter()
        .map(|&k| (k, province.records(k)))
        .collect();
    let start = Instant::now();
    let (snapshot, _) = fanzha_screen::compile::compile_records(1, |k| {
        Ok(records.get(&k).cloned().unwrap_or_default())
    })?;
    let build = start.elapsed();
    // The clone of the records is part of the closure's cost; measure it alone and subtract.
    let t = Instant::now();
    let cloned: usize = Kind::ALL
        .iter()
        .map(|k| records.get(k).cloned().unwrap_or_default().len())
        .sum();
    let clone_cost = t.elapsed();
    let build_ms = build.saturating_sub(clone_cost).as_millis();
    eprintln!(
        "compiled {} subscribers ({cloned} records) in {build_ms} ms; generating {calls} calls …",
        snapshot.subscriber_count()
    );
    let mix: Vec<fanzha_policy::CallAttempt> = traffic(&province, calls, 11)
        .iter()
        .map(|(_, w)| w.resolve(&snapshot))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("generated call does not resolve: {e}"))?;
    let config = RuleConfig::default();
    let mut counters = Counters::new(&snapshot);
    // Warm up, then the throughput pass on this one thread.
    let mut blocked = 0u64;
    for c in mix.iter().take(100_000) {
        blocked += (evaluate(&snapshot, c, &mut counters, &config).code != 302) as u64;
    }
    let mut counters = Counters::new(&snapshot);
    let t = Instant::now();
    for c in &mix {
        blocked += (evaluate(&snapshot, std::hint::black_box(c), &mut counters, &config).code
            != 302) as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    // Latency: each verdict timed on its own (the clock read, ~20 ns, is included).
    let mut counters = Counters::new(&snapshot);
    let mut lat: Vec<u64> = Vec::with_capacity(mix.len().min(200_000));
    for c in mix.iter().take(200_000) {
        let t = Instant::now();
        std::hint::black_box(evaluate(&snapshot, c, &mut counters, &config));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let bytes = snapshot.subscriber_bytes() as f64 / snapshot.subscriber_count().max(1) as f64;
    eprintln!("blocked {blocked} of {} evaluations", mix.len() + 100_000);
    println!(
        "{}",
        json!({
            "verdicts_per_sec": (mix.len() as f64 / secs).round(),
            "p50_ns": pct(0.50), "p99_ns": pct(0.99),
            "subscribers": snapshot.subscriber_count(),
            "build_ms": build_ms,
            "bytes_per_subscriber": (bytes * 10.0).round() / 10.0,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// One INVITE of the load: caller and trunk drawn from the synthetic province's plan.
fn load_invite(i: u64, target: std::net::SocketAddr, local: std::net::SocketAddr) -> Vec<u8> {
    let mut rng = fanzha_synth::Rng::new(i);
    let (trunk, caller) = match rng.below(10) {
        0..=5 => (
            format!("acc-{:04}", rng.below(3)),
            format!(
                "+86{}{:08}",
                ["135", "136", "137", "138", "139", "150"][rng.below(6) as usize],
                rng.below(166_666)
            ),
        ),
        6..=7 => (
            format!("ic-{:04}", rng.below(3)),
            format!(
                "+86{}{:08}",
                ["180", "189", "133"][rng.below(3) as usize],
                rng.below(100_000_000)
            ),
        ),
        _ => (
            format!("intl-{:04}", rng.below(3)),
            if rng.below(2) == 0 {
                "+442079460018".to_string()
            } else {
                format!("+86135{:08}", rng.below(100_000_000))
            },
        ),
    };
    format!(
        "INVITE sip:+86139{:08};tgrp={trunk};trunk-context=fanzha.invalid@{target};user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{i}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{caller}@{local};user=phone>;tag=t{i}\r\n\
         To: <sip:+86139{:08}@{target}>\r\n\
         Call-ID: b{i}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:load@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        i % 100_000_000,
        i % 100_000_000
    )
    .into_bytes()
}

fn sip_load(target: std::net::SocketAddr, rate: u64, duration: u64) -> Result<ExitCode> {
    use fanzha_sip::mmsg::{send_batch, RecvBatch};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    anyhow::ensure!(
        rate > 0 && duration > 0,
        "rate and duration must be positive"
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    fanzha_sip::server::set_buffers(&sock, 32 << 20);
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
    let local = sock.local_addr()?;
    let total = rate * duration;
    eprintln!("preparing {total} INVITEs …");
    let msgs: Vec<(Vec<u8>, std::net::SocketAddr)> = (0..total)
        .map(|i| (load_invite(i, target, local), target))
        .collect();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let lat_us: Arc<Vec<AtomicU64>> =
        Arc::new((0..total).map(|_| AtomicU64::new(u64::MAX)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let receiver = {
        let sock = sock.try_clone()?;
        let (sent_at, lat_us, done) = (sent_at.clone(), lat_us.clone(), done.clone());
        std::thread::spawn(move || {
            let mut batch = RecvBatch::new();
            let mut answered = 0u64;
            while !done.load(Ordering::Relaxed) {
                let Ok(n) = batch.recv(&sock) else { continue };
                let now = start.elapsed().as_nanos() as u64;
                for k in 0..n {
                    let (d, _) = batch.get(k);
                    // Call-ID: b<i>
                    let Some(p) = d.windows(10).position(|w| w == b"Call-ID: b") else {
                        continue;
                    };
                    let digits: u64 = d[p + 10..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .fold(0, |a, &b| a * 10 + (b - b'0') as u64);
                    if let Some(slot) = lat_us.get(digits as usize) {
                        let sent = sent_at[digits as usize].load(Ordering::Relaxed);
                        if slot.load(Ordering::Relaxed) == u64::MAX {
                            slot.store(now.saturating_sub(sent) / 1000, Ordering::Relaxed);
                            answered += 1;
                        }
                    }
                }
            }
            answered
        })
    };
    // Open loop: send what is due by the clock, whatever the answers do. Short, precise
    // sleeps (1 µs timer slack instead of the default 50 µs) keep bursts small, so the
    // latency measured is the server's, not the generator's batching.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_TIMERSLACK takes one integer argument; it affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
    let mut next = 0usize;
    while next < msgs.len() {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(msgs.len());
        if due <= next {
            std::thread::sleep(std::time::Duration::from_micros(50));
            continue;
        }
        let end = due.min(next + 256);
        let now = start.elapsed().as_nanos() as u64;
        for s in &sent_at[next..end] {
            s.store(now, Ordering::Relaxed);
        }
        let n = send_batch(&sock, &msgs[next..end])?;
        next += n.max(1);
    }
    let send_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let answered = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let mut lat: Vec<u64> = lat_us
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&v| v != u64::MAX)
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
        }
    };
    println!(
        "{}",
        json!({
            "target": target.to_string(),
            "offered_per_sec": (total as f64 / send_secs).round(),
            "answered_per_sec": (answered as f64 / send_secs).round(),
            "loss_ratio": 1.0 - answered as f64 / total as f64,
            "p50_us": pct(0.5), "p99_us": pct(0.99), "p999_us": pct(0.999),
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn monitor_bench(records: u64, numbers: u64) -> Result<ExitCode> {
    use fanzha_detect::monitor::{default_rules, read_csv, Format, Monitor};
    use std::fmt::Write as _;
    eprintln!("generating {records} call records over {numbers} numbers …");
    let mut rng = fanzha_synth::Rng::new(5);
    let mut csv = String::with_capacity(records as usize * 96);
    csv.push_str("start,caller,callee,duration_s,trunk,imei,cell\n");
    let day0: i64 = 1_795_968_000; // 2026-11-30T00:00:00+08:00
    let cst = fanzha_model::time::cst();
    for i in 0..records {
        let t = day0 + (i as i64 * 86_400 / records as i64);
        let tt = chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .with_timezone(&cst);
        let caller = rng.below(numbers);
        let _ = writeln!(
            csv,
            "{},+86135{:08},+86139{:08},{},acc-1,35{:013},c{}",
            tt.format("%Y-%m-%dT%H:%M:%S+08:00"),
            caller,
            rng.below(100_000_000),
            rng.below(300),
            caller,
            rng.below(50)
        );
    }
    // A real file, read back as `fanzha monitor` reads it.
    let dir = std::env::temp_dir().join(format!("fanzha-bench-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("cdr.csv");
    std::fs::write(&path, &csv)?;
    drop(csv);
    let data = std::fs::read(&path)?;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{} MB of records; monitoring on one core …",
        data.len() / 1_000_000
    );
    let mut monitor = Monitor::new(default_rules());
    let (mut alerts, mut bad) = (0u64, 0u64);
    let start = Instant::now();
    let mut raised = Vec::new();
    read_csv(
        &data,
        Format::Native,
        |batch| {
            monitor.add_batch(batch, &mut raised);
            alerts += raised.len() as u64;
            raised.clear();
        },
        |_, _| bad += 1,
    )
    .map_err(anyhow::Error::msg)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!("{alerts} alerts, {bad} bad records");
    println!(
        "{}",
        json!({"cdr_per_sec": (records as f64 / secs).round(), "active_numbers": monitor.active_numbers(),
               "bytes_per_number": monitor.bytes_per_number(), "records": records})
    );
    Ok(ExitCode::SUCCESS)
}
