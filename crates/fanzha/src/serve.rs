//! `fanzha serve`: one process with the SIP redirect server (UDP and TCP), the HTTP API,
//! metrics and health, a snapshot refresher that follows the ledger, and graceful shutdown.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use fanzha_api::metrics::Metrics;
use fanzha_api::{app, refresh, AppState};
use fanzha_policy::RuleConfig;
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log;
use fanzha_screen::Engine;
use fanzha_sip::server::Server;
use fanzha_sip::Handler;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/serve.example.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SIP listen address (UDP and TCP).
    #[arg(long)]
    sip: Option<SocketAddr>,
    /// HTTP listen address.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Source address → trunk: CIDR=TRUNK_ID (repeatable).
    #[arg(long = "trunk-map")]
    trunk_map: Vec<String>,
    /// A trusted SIP peer (RFC 3325 trust domain): its P-Asserted-Identity is believed and
    /// its tgrp may name the trunk (repeatable CIDR).
    #[arg(long = "trusted")]
    trusted: Vec<String>,
    /// Rules in shadow mode (comma-separated).
    #[arg(long)]
    shadow: Option<String>,
    /// Answer 608 blocks with 603 Network Blocked + Reason (ATIS "603+").
    #[arg(long = "603-plus")]
    use_603_plus: bool,
    /// Benchmark mode: screen against a generated province of N subscribers (fanzha-synth,
    /// as `fanzha bench screen` builds it) instead of the ledger's snapshot; the ledger is
    /// not followed.
    #[arg(long)]
    synthetic_province: Option<u64>,
    /// Kafka brokers (host:port,…) to consume call records from (consumer group; offsets
    /// committed after processing).
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// Kafka topic of call records (default "cdr").
    #[arg(long)]
    kafka_topic: Option<String>,
    /// Kafka consumer group (default "fanzha-monitor").
    #[arg(long)]
    kafka_group: Option<String>,
}

pub use crate::serve_config::ServeConfig;
use crate::serve_config::{Overrides, RawConfig};

/// Reads the TOML file and the flags, reporting every error at once.
pub fn load_config(args: &ServeArgs) -> Result<ServeConfig, Vec<String>> {
    RawConfig::load(args.config.as_deref())?.validate(&Overrides {
        http: args.http,
        sip: args.sip,
        trunk_map: args.trunk_map.clone(),
        trusted: args.trusted.clone(),
        shadow: args.shadow.clone(),
        use_603_plus: args.use_603_plus,
        kafka_brokers: args.kafka_brokers.clone(),
        kafka_topic: args.kafka_topic.clone(),
        kafka_group: args.kafka_group.clone(),
    })
}

pub fn run(args: ServeArgs, store: &StoreArgs) -> Result<ExitCode> {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("fanzha serve: config error: {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FANZHA_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let t = std::time::Instant::now();
    fanzha_model::number::warm_up();
    tracing::info!(ms = t.elapsed().as_millis() as u64, "numbering plans ready");
    let (mut ledger, auth) = store.ledger_and_auth(fanzha_api::auth::AuthConfig {
        secure_cookie: config.tls.is_some(),
        ..Default::default()
    })?;
    let auth = Arc::new(auth);
    if auth.list()?.iter().all(|p| p.revoked_at.is_some()) {
        tracing::warn!(
            "no principals: every request but /healthz is refused; add one with `fanzha auth add-token NAME --role ROLE`"
        );
    }
    let (snapshot, report) = match args.synthetic_province {
        None => compile(ledger.store().as_mut()).context("compile the policy snapshot")?,
        Some(n) => {
            let p = fanzha_synth::Province::generate(fanzha_synth::Spec {
                subscribers: n,
                ..fanzha_synth::Spec::bench()
            });
            fanzha_screen::compile::compile_records(u64::MAX, |k| Ok(p.records(k)))?
        }
    };
    let follow_ledger = args.synthetic_province.is_none();
    for s in &report.skipped {
        tracing::warn!(skipped = %s, "snapshot compile");
    }
    let metrics = Arc::new(Metrics::default());
    metrics
        .generation
        .store(snapshot.generation, std::sync::atomic::Ordering::Relaxed);
    let engine = Arc::new(Engine::new(
        snapshot,
        RuleConfig {
            shadow: config.shadow,
            replica: config.replica,
        },
    ));
    let log_dir = store.decisions_dir();
    let log = if config.log_decisions {
        std::fs::create_dir_all(&store.data_dir)?;
        Some(Arc::new(store.decision_log(|c| {
            c.fsync = config.decisions_fsync;
            c.on_failure = config.decisions_on_failure;
            c.max_backlog_bytes = config.decisions_backlog_bytes;
        })?))
    } else {
        None
    };
    let handler = Arc::new(Handler::new(
        engine.clone(),
        config.sip_config.clone(),
        log.clone(),
        Some(metrics.clone()),
    ));
    let sip = Server::start_with(config.sip, handler, config.udp_threads, config.tcp_limits)
        .with_context(|| format!("bind SIP {}", config.sip))?;
    let ledger = Arc::new(Mutex::new(ledger));
    let monitor = if config.monitor.enabled {
        let mut m = fanzha_detect::monitor::Monitor::from_rules(config.monitor.rules.clone());
        if let Some(path) = &config.monitor.model {
            let model = crate::model_cmd::load(path)?;
            m.set_model(model)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Some(fanzha_api::MonitorIngest {
            pipeline: Arc::new(Mutex::new({
                let mut p = fanzha_monitor::Pipeline::new(m);
                p.set_auto_dispose(config.monitor.auto_dispose.clone());
                p
            })),
            dispose: config.monitor.dispose,
        })
    } else {
        None
    };
    let kafka_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kafka = match (&monitor, &config.monitor.kafka) {
        (Some(ingest), Some(source)) => Some(start_kafka(
            source.clone(),
            ingest.clone(),
            (ledger.clone(), engine.clone(), metrics.clone()),
            store.clone(),
            config.max_clock_skew_s,
            kafka_stop.clone(),
        )?),
        _ => None,
    };
    let state = AppState {
        engine: engine.clone(),
        ledger: ledger.clone(),
        auth: auth.clone(),
        log: log.clone(),
        metrics: metrics.clone(),
        clock: Arc::new(crate::backend::SystemClock),
        monitor,
        max_clock_skew_s: config.max_clock_skew_s,
        request_timeout: config.request_timeout,
    };
    // Opened before the runtime starts: the store's client blocks on a runtime of its own.
    let retention_key = store.decisions_key()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("bind HTTP {}", config.http))?;
        let http_addr = listener.local_addr()?;
        let tls = match &config.tls {
            None => None,
            Some((cert, key)) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!("HTTPS: cannot use {} and {}", cert.display(), key.display())
                    })?,
            ),
        };
        let shutdown = shutdown_signal();
        // One line for operators and tests: where everything listens.
        println!(
            "fanzha serve: http={http_addr} tls={} sip_udp={} sip_tcp={} generation={}",
            if tls.is_some() { "on" } else { "off" },
            sip.udp_addr,
            sip.tcp_addr,
            engine.snapshot().generation
        );
        tracing::info!(%http_addr, sip_udp = %sip.udp_addr, sip_tcp = %sip.tcp_addr, "listening");
        // Follow ledger changes made by other processes (CLI imports, other API nodes).
        let refresher = {
            let (ledger, engine, metrics) = (ledger.clone(), engine.clone(), metrics.clone());
            let every = config.refresh;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if !follow_ledger {
                        continue;
                    }
                    let (l, e, m) = (ledger.clone(), engine.clone(), metrics.clone());
                    match tokio::task::spawn_blocking(move || refresh(&l, &e, &m)).await {
                        Ok(Err(err)) => tracing::warn!(%err, "snapshot refresh failed"),
                        Err(err) => tracing::warn!(%err, "snapshot refresh task failed"),
                        Ok(Ok(_)) => {}
                    }
                }
            })
        };
        // Principals changed by other processes (`fanzha auth revoke`): a revoked token is
        // refused within a second.
        let principals = {
            let auth = auth.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let a = auth.clone();
                    match tokio::task::spawn_blocking(move || a.reload_if_changed()).await {
                        Ok(Err(err)) => tracing::warn!(%err, "principals reload failed"),
                        Err(err) => tracing::warn!(%err, "principals reload task failed"),
                        Ok(Ok(_)) => {}
                    }
                }
            })
        };
        let retention = {
            let dir = log_dir.clone();
            let days = config.retention_days;
            let key = retention_key.clone();
            tokio::spawn(async move {
                loop {
                    let cutoff = chrono::Utc::now().timestamp() - days * 86_400;
                    if let Err(err) = decision_log::apply_retention(&dir, &key, cutoff) {
                        tracing::warn!(%err, "decision log retention");
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            })
        };
        let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
        match tls {
            None => {
                use axum::serve::ListenerExt;
                // `tap_io` keeps the peer's address available to ConnectInfo.
                let limited =
                    fanzha_api::listener::Limited::new(listener, config.http_max_connections)
                        .tap_io(|_| ());
                axum::serve(limited, service)
                    .with_graceful_shutdown(shutdown)
                    .await?
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let h = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    h.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                    .handle(handle)
                    .serve(service)
                    .await?
            }
        }
        refresher.abort();
        principals.abort();
        retention.abort();
        tracing::info!("HTTP drained; stopping SIP");
        sip.shutdown();
        anyhow::Ok(())
    });
    kafka_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(k) = kafka {
        if k.join().is_err() {
            tracing::warn!("kafka consumer panicked");
        }
    }
    if let Some(log) = log {
        log.flush();
    }
    result?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

type Shared = (
    Arc<Mutex<fanzha_ledger::Ledger<Box<dyn fanzha_ledger::Store>>>>,
    Arc<Engine>,
    Arc<Metrics>,
);

/// The Kafka consumer on its own thread: records → monitor → disposal in the ledger → the
/// snapshot refreshed at once (so screening blocks a disposed number within the poll
/// interval) → offsets committed.
fn start_kafka(
    source: fanzha_monitor::kafka::KafkaSource,
    ingest: fanzha_api::MonitorIngest,
    (ledger, engine, metrics): Shared,
    store: StoreArgs,
    max_clock_skew_s: i64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let dispose = ingest.dispose;
    let mut disposer: Box<dyn fanzha_monitor::Disposer + Send> = if ingest.dispose {
        Box::new(fanzha_monitor::LedgerDisposer {
            ledger: ledger.clone(),
            actor: Arc::new(move || fanzha_ledger::Actor {
                name: "fanzha-monitor (kafka)".into(),
                ..store.actor()
            }),
        })
    } else {
        Box::new(fanzha_monitor::ReportOnly)
    };
    Ok(std::thread::Builder::new()
        .name("kafka".into())
        .spawn(move || {
            let mut after = |r: &fanzha_monitor::IngestReport| {
                metrics.record_ingest(r);
                for a in &r.alerts {
                    tracing::info!(number = %a.number, level = a.level, action = a.action, rules = ?a.rules, "monitor alert");
                }
                if dispose {
                    // At once in screening; the refresher's recompile follows.
                    fanzha_api::block_disposed(&engine, r);
                }
            };
            if let Err(err) = fanzha_monitor::kafka::consume(
                &source,
                ingest.pipeline,
                disposer.as_mut(),
                &mut after,
                &|| chrono::Utc::now().timestamp() + max_clock_skew_s,
                &stop,
            ) {
                tracing::error!(%err, "kafka consumer stopped");
            }
        })?)
}

/// Registers SIGTERM and Ctrl-C handlers now (before the service says it is listening, so a
/// signal sent right after that line is never lost) and resolves when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term_recv = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int_recv = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term_recv => {},
                _ = int_recv => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
