//! `fanzha serve`: one process with the SIP redirect server (UDP and TCP), the HTTP API,
//! metrics and health, a snapshot refresher that follows the ledger, and graceful shutdown.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use fanzha_api::metrics::Metrics;
use fanzha_api::{app, refresh, AppState};
use fanzha_policy::{RuleConfig, RuleSet};
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::{self, DecisionLog};
use fanzha_screen::wire::parse_rule_list;
use fanzha_screen::Engine;
use fanzha_sip::server::Server;
use fanzha_sip::{Handler, SipConfig, TrunkMapEntry};
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

/// The monitor part of the configuration.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// `POST /v1/cdr` and the Kafka consumer are on.
    pub enabled: bool,
    /// Alerts are executed in the ledger.
    pub dispose: bool,
    /// Threshold rules and disposal policy (validated).
    pub rules: fanzha_detect::monitor::RulesFile,
    /// The scoring model, if any.
    pub model: Option<PathBuf>,
    /// The Kafka source, if any.
    pub kafka: Option<fanzha_monitor::kafka::KafkaSource>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: SocketAddr,
    /// HTTPS: certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub sip: SocketAddr,
    pub udp_threads: usize,
    pub sip_config: SipConfig,
    pub shadow: RuleSet,
    pub refresh: Duration,
    pub log_decisions: bool,
    pub retention_days: i64,
    pub monitor: MonitorConfig,
}

/// Reads the TOML file and the flags, reporting every error at once.
pub fn load_config(args: &ServeArgs) -> Result<ServeConfig, Vec<String>> {
    let mut errors = Vec::new();
    let doc: toml::Table = match &args.config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => match t.parse::<toml::Table>() {
                Ok(d) => d,
                Err(e) => return Err(vec![format!("{}: {e}", p.display())]),
            },
            Err(e) => return Err(vec![format!("{}: {e}", p.display())]),
        },
        None => toml::Table::new(),
    };
    let known: &[(&str, &[&str])] = &[
        ("http", &["listen", "tls_cert", "tls_key"]),
        (
            "sip",
            &[
                "listen",
                "udp_threads",
                "generic_header",
                "use_603_plus",
                "redress_uri",
                "trunk_map",
            ],
        ),
        ("screening", &["shadow", "refresh_ms"]),
        ("decisions", &["enabled", "retention_days"]),
        ("audit", &["retention_days"]),
        ("monitor", &["enabled", "dispose", "rules", "model"]),
        (
            "kafka",
            &[
                "brokers",
                "topic",
                "group",
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "sasl_password",
                "ssl_ca_location",
            ],
        ),
    ];
    for (section, v) in &doc {
        match known.iter().find(|(s, _)| s == section) {
            None => errors.push(format!("unknown section [{section}]")),
            Some((_, keys)) => {
                if let Some(t) = v.as_table() {
                    for k in t.keys().filter(|k| !keys.contains(&k.as_str())) {
                        errors.push(format!("unknown key {section}.{k}"));
                    }
                } else {
                    errors.push(format!("{section} must be a table"));
                }
            }
        }
    }
    let get = |s: &str, k: &str| doc.get(s).and_then(|t| t.get(k));
    let mut addr = |s: &str, flag: Option<SocketAddr>, default: &str| -> SocketAddr {
        if let Some(a) = flag {
            return a;
        }
        match get(s, "listen") {
            None => default.parse().expect("default address"),
            Some(v) => match v.as_str().map(str::parse::<SocketAddr>) {
                Some(Ok(a)) => a,
                _ => {
                    errors.push(format!(
                        "{s}.listen: {v} is not an address like 127.0.0.1:5060"
                    ));
                    default.parse().expect("default address")
                }
            },
        }
    };
    let http = addr("http", args.http, "127.0.0.1:8080");
    let sip = addr("sip", args.sip, "127.0.0.1:5060");
    let file = |k: &str, errors: &mut Vec<String>| -> Option<PathBuf> {
        let v = get("http", k)?;
        match v.as_str() {
            Some(p) if std::path::Path::new(p).is_file() => Some(PathBuf::from(p)),
            Some(p) => {
                errors.push(format!("http.{k}: {p} is not a readable file"));
                None
            }
            None => {
                errors.push(format!("http.{k} must be the path of a PEM file"));
                None
            }
        }
    };
    let tls = match (file("tls_cert", &mut errors), file("tls_key", &mut errors)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            if get("http", "tls_cert").is_some() != get("http", "tls_key").is_some() {
                errors.push("http.tls_cert and http.tls_key are set together".into());
            }
            None
        }
    };
    let int =
        |s: &str, k: &str, default: i64, min: i64, max: i64, errors: &mut Vec<String>| -> i64 {
            match get(s, k) {
                None => default,
                Some(v) => match v.as_integer() {
                    Some(n) if (min..=max).contains(&n) => n,
                    _ => {
                        errors.push(format!(
                            "{s}.{k}: {v} is not a whole number in {min}..={max}"
                        ));
                        default
                    }
                },
            }
        };
    let udp_threads = int("sip", "udp_threads", 2, 1, 64, &mut errors) as usize;
    let refresh_ms = int("screening", "refresh_ms", 500, 50, 60_000, &mut errors);
    let retention_days = int("decisions", "retention_days", 180, 1, 36_500, &mut errors);
    // R17.1 / MLPS level 3: audit records are kept at least 180 days. This version never
    // prunes the trail; a configuration asking for less is refused rather than ignored.
    if let Some(v) = get("audit", "retention_days") {
        match v.as_integer() {
            Some(n) if n >= 180 => {}
            _ => errors.push(format!(
                "audit.retention_days: {v} is less than the 180 days audit records must be kept (R17.1)"
            )),
        }
    }
    let string = |s: &str, k: &str, default: &str, errors: &mut Vec<String>| -> String {
        match get(s, k) {
            None => default.to_string(),
            Some(v) => v.as_str().map(str::to_string).unwrap_or_else(|| {
                errors.push(format!("{s}.{k}: {v} is not a string"));
                default.to_string()
            }),
        }
    };
    let boolean = |s: &str, k: &str, default: bool, errors: &mut Vec<String>| -> bool {
        match get(s, k) {
            None => default,
            Some(v) => v.as_bool().unwrap_or_else(|| {
                errors.push(format!("{s}.{k}: {v} is not true or false"));
                default
            }),
        }
    };
    let mut trunk_map = Vec::new();
    let mut map_entries: Vec<String> = Vec::new();
    match get("sip", "trunk_map") {
        None => {}
        Some(v) => match v.as_array() {
            Some(a) => map_entries.extend(a.iter().map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })),
            None => {
                errors.push("sip.trunk_map must be an array of \"CIDR=TRUNK_ID\" strings".into())
            }
        },
    }
    map_entries.extend(args.trunk_map.iter().cloned());
    for e in &map_entries {
        match TrunkMapEntry::parse(e) {
            Ok(t) => trunk_map.push(t),
            Err(msg) => errors.push(format!("trunk map: {msg}")),
        }
    }
    let shadow_text = match (&args.shadow, get("screening", "shadow")) {
        (Some(s), _) => s.clone(),
        (None, Some(v)) => match v.as_array() {
            Some(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => {
                errors.push("screening.shadow must be an array of rule IDs".into());
                String::new()
            }
        },
        (None, None) => String::new(),
    };
    let shadow = parse_rule_list(&shadow_text).unwrap_or_else(|e| {
        errors.push(format!("screening.shadow: {e}"));
        RuleSet::EMPTY
    });
    let sip_config = SipConfig {
        generic_header: string("sip", "generic_header", "P-Generic-Number", &mut errors),
        trunk_map,
        use_603_plus: args.use_603_plus || boolean("sip", "use_603_plus", false, &mut errors),
        redress_uri: string(
            "sip",
            "redress_uri",
            "https://fanzha.invalid/redress",
            &mut errors,
        ),
    };
    let log_decisions = boolean("decisions", "enabled", true, &mut errors);
    let builtin = fanzha_detect::monitor::RulesFile::default;
    let rules = match get("monitor", "rules").map(|v| v.as_str()) {
        None => builtin(),
        Some(None) => {
            errors.push("monitor.rules must be the path of a rules file".into());
            builtin()
        }
        Some(Some(path)) => crate::monitor_cmd::load_rules(std::path::Path::new(path))
            .unwrap_or_else(|e| {
                errors.extend(e.into_iter().map(|e| format!("monitor.rules: {e}")));
                builtin()
            }),
    };
    let model = match get("monitor", "model") {
        None => None,
        Some(v) => match v.as_str() {
            Some(p) if std::path::Path::new(p).is_file() => Some(PathBuf::from(p)),
            Some(p) => {
                errors.push(format!("monitor.model: {p} is not a readable file"));
                None
            }
            None => {
                errors.push("monitor.model must be the path of a model file".into());
                None
            }
        },
    };
    let brokers = args
        .kafka_brokers
        .clone()
        .or_else(|| get("kafka", "brokers").map(|_| string("kafka", "brokers", "", &mut errors)));
    let kafka_properties = kafka_security(&doc, &mut errors);
    let kafka = brokers.map(|brokers| fanzha_monitor::kafka::KafkaSource {
        brokers,
        topic: args
            .kafka_topic
            .clone()
            .unwrap_or_else(|| string("kafka", "topic", "cdr", &mut errors)),
        group: args
            .kafka_group
            .clone()
            .unwrap_or_else(|| string("kafka", "group", "fanzha-monitor", &mut errors)),
        properties: kafka_properties,
    });
    if let Some(k) = &kafka {
        for (what, v) in [
            ("brokers", &k.brokers),
            ("topic", &k.topic),
            ("group", &k.group),
        ] {
            if v.trim().is_empty() {
                errors.push(format!("kafka.{what} is empty"));
            }
        }
    }
    let monitor = MonitorConfig {
        enabled: boolean("monitor", "enabled", true, &mut errors),
        dispose: boolean("monitor", "dispose", true, &mut errors),
        rules,
        model,
        kafka,
    };
    if monitor.kafka.is_some() && !monitor.enabled {
        errors.push("kafka is configured but monitor.enabled is false".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ServeConfig {
        http,
        tls,
        sip,
        udp_threads,
        sip_config,
        shadow,
        refresh: Duration::from_millis(refresh_ms as u64),
        log_decisions,
        retention_days,
        monitor,
    })
}

/// `[kafka]` security settings as librdkafka properties: the protocol and SASL mechanism
/// from the lists librdkafka supports, SASL credentials required together.
fn kafka_security(doc: &toml::Table, errors: &mut Vec<String>) -> Vec<(String, String)> {
    let Some(k) = doc.get("kafka").and_then(|v| v.as_table()) else {
        return Vec::new();
    };
    let mut props = Vec::new();
    let mut text = |key: &str| -> Option<String> {
        match k.get(key) {
            None => None,
            Some(v) => match v.as_str() {
                Some(s) if !s.contains(['\r', '\n', '\0']) => Some(s.to_string()),
                _ => {
                    errors.push(format!("kafka.{key} must be a one-line string"));
                    None
                }
            },
        }
    };
    let protocol = text("security_protocol");
    let mechanism = text("sasl_mechanism");
    let username = text("sasl_username");
    let password = text("sasl_password");
    let ca = text("ssl_ca_location");
    if let Some(p) = &protocol {
        match p.to_ascii_lowercase().as_str() {
            "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl" => {
                props.push(("security.protocol".into(), p.to_ascii_lowercase()))
            }
            _ => errors.push(format!(
                "kafka.security_protocol {p:?} is not plaintext, ssl, sasl_plaintext or sasl_ssl"
            )),
        }
    }
    let sasl = protocol
        .as_deref()
        .is_some_and(|p| p.to_ascii_lowercase().starts_with("sasl_"));
    if let Some(m) = &mechanism {
        match m.as_str() {
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                props.push(("sasl.mechanism".into(), m.clone()))
            }
            _ => errors.push(format!(
                "kafka.sasl_mechanism {m:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }
    match (sasl, &username, &password) {
        (true, Some(u), Some(p)) => {
            props.push(("sasl.username".into(), u.clone()));
            props.push(("sasl.password".into(), p.clone()));
        }
        (true, _, _) => errors.push(
            "kafka.security_protocol sasl_* needs kafka.sasl_username and kafka.sasl_password"
                .into(),
        ),
        (false, None, None) => {}
        (false, _, _) => errors.push(
            "kafka.sasl_username/sasl_password are set but security_protocol is not sasl_plaintext or sasl_ssl"
                .into(),
        ),
    }
    if let Some(ca) = ca {
        if !std::path::Path::new(&ca).is_file() {
            errors.push(format!(
                "kafka.ssl_ca_location: {ca} is not a readable file"
            ));
        }
        props.push(("ssl.ca.location".into(), ca));
    }
    props
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
        },
    ));
    let log_dir = store.data_dir.join("decisions");
    let log = if config.log_decisions {
        std::fs::create_dir_all(&store.data_dir)?;
        Some(Arc::new(DecisionLog::open(&log_dir)?))
    } else {
        None
    };
    let handler = Arc::new(Handler::new(
        engine.clone(),
        config.sip_config.clone(),
        log.clone(),
        Some(metrics.clone()),
    ));
    let sip = Server::start(config.sip, handler, config.udp_threads)
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
            pipeline: Arc::new(Mutex::new(fanzha_monitor::Pipeline::new(m))),
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
    };
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
            tokio::spawn(async move {
                loop {
                    let cutoff = chrono::Utc::now().timestamp() - days * 86_400;
                    if let Err(err) = decision_log::apply_retention(&dir, cutoff) {
                        tracing::warn!(%err, "decision log retention");
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            })
        };
        let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
        match tls {
            None => {
                axum::serve(listener, service)
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
                    fanzha_api::block_disposed(&engine, &r.alerts);
                }
            };
            if let Err(err) = fanzha_monitor::kafka::consume(
                &source,
                ingest.pipeline,
                disposer.as_mut(),
                &mut after,
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
