//! `fanzha serve`'s configuration: the TOML file read into a [`RawConfig`] (serde; every
//! value kept even when it has the wrong type, unknown keys collected by `serde_ignored`),
//! then validated with the command-line overrides into a [`ServeConfig`], reporting every
//! error at once. No file, socket or clock is touched here but the files a setting names.

use fanzha_policy::RuleSet;
use fanzha_screen::decision_log::OnFailure;
use fanzha_screen::wire::parse_rule_list;
use fanzha_sip::{SipConfig, TrunkMapEntry};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting as written: its value if it has the type asked for, else what was written
/// (so a wrong type is one error among all, not the end of reading).
#[derive(Debug, Clone)]
pub struct Setting<T>(Result<T, toml::Value>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Setting<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        Ok(Setting(v.clone().try_into::<T>().map_err(|_| v)))
    }
}

/// The file as read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub http: RawHttp,
    pub sip: RawSip,
    pub screening: RawScreening,
    pub decisions: RawDecisions,
    pub audit: RawAudit,
    pub monitor: RawMonitor,
    pub kafka: Option<RawKafka>,
    /// Unknown sections and keys found while reading (reported with the other errors).
    #[serde(skip)]
    pub unknown: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHttp {
    pub listen: Option<Setting<String>>,
    pub request_timeout_ms: Option<Setting<i64>>,
    pub max_connections: Option<Setting<i64>>,
    pub tls_cert: Option<Setting<String>>,
    pub tls_key: Option<Setting<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSip {
    pub listen: Option<Setting<String>>,
    pub udp_threads: Option<Setting<i64>>,
    pub generic_header: Option<Setting<String>>,
    pub use_603_plus: Option<Setting<bool>>,
    pub redress_uri: Option<Setting<String>>,
    pub trunk_map: Option<Setting<Vec<String>>>,
    pub trusted: Option<Setting<Vec<String>>>,
    pub unknown_source: Option<Setting<String>>,
    pub tcp_max_connections: Option<Setting<i64>>,
    pub tcp_max_per_source: Option<Setting<i64>>,
    pub tcp_idle_s: Option<Setting<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawScreening {
    pub shadow: Option<Setting<Vec<String>>>,
    pub refresh_ms: Option<Setting<i64>>,
    pub max_clock_skew_s: Option<Setting<i64>>,
    pub replicas: Option<Setting<i64>>,
    pub replica_index: Option<Setting<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDecisions {
    pub enabled: Option<Setting<bool>>,
    pub retention_days: Option<Setting<i64>>,
    pub fsync_ms: Option<Setting<i64>>,
    pub on_failure: Option<Setting<String>>,
    pub max_backlog_mb: Option<Setting<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAudit {
    pub retention_days: Option<Setting<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMonitor {
    pub enabled: Option<Setting<bool>>,
    pub dispose: Option<Setting<bool>>,
    pub auto_dispose: Option<Setting<Vec<String>>>,
    pub rules: Option<Setting<String>>,
    pub model: Option<Setting<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawKafka {
    pub brokers: Option<Setting<String>>,
    pub topic: Option<Setting<String>>,
    pub group: Option<Setting<String>>,
    pub security_protocol: Option<Setting<String>>,
    pub sasl_mechanism: Option<Setting<String>>,
    pub sasl_username: Option<Setting<String>>,
    pub sasl_password: Option<Setting<String>>,
    pub ssl_ca_location: Option<Setting<String>>,
}

/// What the command line sets over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub http: Option<SocketAddr>,
    pub sip: Option<SocketAddr>,
    pub trunk_map: Vec<String>,
    pub trusted: Vec<String>,
    pub shadow: Option<String>,
    pub use_603_plus: bool,
    pub kafka_brokers: Option<String>,
    pub kafka_topic: Option<String>,
    pub kafka_group: Option<String>,
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
    /// Which alerts block and suspend with no person deciding.
    pub auto_dispose: fanzha_monitor::AutoDispose,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: SocketAddr,
    /// HTTPS: certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The most time an HTTP request may take.
    pub request_timeout: Duration,
    /// HTTP connections open at once (plain HTTP; more wait in the backlog).
    pub http_max_connections: usize,
    pub sip: SocketAddr,
    pub udp_threads: usize,
    /// SIP over TCP: connection caps and timeouts.
    pub tcp_limits: fanzha_sip::server::TcpLimits,
    pub sip_config: SipConfig,
    pub shadow: RuleSet,
    /// This node among the screening replicas (quota shares, R8.1).
    pub replica: fanzha_policy::Replica,
    pub refresh: Duration,
    /// How far a call's or call record's time may run ahead of the server's clock.
    pub max_clock_skew_s: i64,
    pub log_decisions: bool,
    pub retention_days: i64,
    /// Most time between forcing the decision log to disk.
    pub decisions_fsync: Duration,
    /// Calls while the decision log cannot be written.
    pub decisions_on_failure: OnFailure,
    /// Most bytes of decisions waiting in memory for a writer that is behind.
    pub decisions_backlog_bytes: usize,
    pub monitor: MonitorConfig,
}

impl RawConfig {
    /// Reads TOML text (a syntax error is the one error); unknown sections and keys are
    /// kept to be reported with the rest by [`RawConfig::validate`].
    pub fn parse(text: &str) -> Result<RawConfig, Vec<String>> {
        let de = toml::Deserializer::new(text);
        let mut unknown = Vec::new();
        let mut raw: RawConfig = serde_ignored::deserialize(de, |path| {
            let p = path.to_string();
            unknown.push(if p.contains('.') {
                format!("unknown key {p}")
            } else {
                format!("unknown section [{p}]")
            });
        })
        .map_err(|e| vec![e.to_string()])?;
        raw.unknown = unknown;
        Ok(raw)
    }

    /// The file named, or no file.
    pub fn load(path: Option<&Path>) -> Result<RawConfig, Vec<String>> {
        match path {
            None => Ok(RawConfig::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| vec![format!("{}: {e}", p.display())])?;
                RawConfig::parse(&text)
            }
        }
    }

    /// Checks every setting, with the overrides; every error at once.
    pub fn validate(self, o: &Overrides) -> Result<ServeConfig, Vec<String>> {
        let mut errors = self.unknown.clone();
        let e = &mut errors;
        let http = o
            .http
            .unwrap_or_else(|| address(e, "http.listen", self.http.listen, "127.0.0.1:8080"));
        let sip = o
            .sip
            .unwrap_or_else(|| address(e, "sip.listen", self.sip.listen, "127.0.0.1:5060"));
        let tls = match (
            file(e, "http.tls_cert", self.http.tls_cert),
            file(e, "http.tls_key", self.http.tls_key),
        ) {
            (Some(Some(c)), Some(Some(k))) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                e.push("http.tls_cert and http.tls_key are set together".into());
                None
            }
            _ => None,
        };
        let udp_threads = whole(e, "sip.udp_threads", self.sip.udp_threads, 2, 1..=64) as usize;
        let tcp_defaults = fanzha_sip::server::TcpLimits::default();
        let tcp_limits = fanzha_sip::server::TcpLimits {
            max_connections: whole(
                e,
                "sip.tcp_max_connections",
                self.sip.tcp_max_connections,
                tcp_defaults.max_connections as i64,
                1..=100_000,
            ) as usize,
            max_per_source: whole(
                e,
                "sip.tcp_max_per_source",
                self.sip.tcp_max_per_source,
                tcp_defaults.max_per_source as i64,
                1..=100_000,
            ) as usize,
            idle: Duration::from_secs(whole(
                e,
                "sip.tcp_idle_s",
                self.sip.tcp_idle_s,
                tcp_defaults.idle.as_secs() as i64,
                1..=86_400,
            ) as u64),
            ..tcp_defaults
        };
        let http_max_connections = whole(
            e,
            "http.max_connections",
            self.http.max_connections,
            1024,
            1..=100_000,
        ) as usize;
        let request_timeout = Duration::from_millis(whole(
            e,
            "http.request_timeout_ms",
            self.http.request_timeout_ms,
            30_000,
            100..=600_000,
        ) as u64);
        let replicas = whole(
            e,
            "screening.replicas",
            self.screening.replicas,
            1,
            1..=1024,
        );
        let replica_index = whole(
            e,
            "screening.replica_index",
            self.screening.replica_index,
            0,
            0..=1023,
        );
        if replica_index >= replicas {
            e.push(format!(
                "screening.replica_index {replica_index} is not below screening.replicas {replicas}"
            ));
        }
        let replica = fanzha_policy::Replica {
            index: replica_index as u32,
            count: replicas as u32,
        };
        let max_clock_skew_s = whole(
            e,
            "screening.max_clock_skew_s",
            self.screening.max_clock_skew_s,
            300,
            0..=86_400,
        );
        let refresh_ms = whole(
            e,
            "screening.refresh_ms",
            self.screening.refresh_ms,
            500,
            50..=60_000,
        );
        let retention_days = whole(
            e,
            "decisions.retention_days",
            self.decisions.retention_days,
            180,
            1..=36_500,
        );
        let decisions_fsync = Duration::from_millis(whole(
            e,
            "decisions.fsync_ms",
            self.decisions.fsync_ms,
            1000,
            10..=60_000,
        ) as u64);
        let decisions_backlog_bytes = whole(
            e,
            "decisions.max_backlog_mb",
            self.decisions.max_backlog_mb,
            64,
            1..=4096,
        ) as usize
            * (1 << 20);
        let decisions_on_failure = match self.decisions.on_failure.map(|s| s.0) {
            None => OnFailure::Answer,
            Some(Ok(v)) if v == "answer" => OnFailure::Answer,
            Some(Ok(v)) if v == "refuse" => OnFailure::Refuse,
            Some(Ok(v)) => {
                e.push(format!(
                    "decisions.on_failure {v:?} is not \"answer\" or \"refuse\""
                ));
                OnFailure::Answer
            }
            Some(Err(v)) => {
                e.push(format!(
                    "decisions.on_failure: {v} is not \"answer\" or \"refuse\""
                ));
                OnFailure::Answer
            }
        };
        // R17.1 / MLPS level 3: audit records are kept at least 180 days. This version
        // never prunes the trail; a configuration asking for less is refused, not ignored.
        if let Some(v) = self.audit.retention_days {
            match v.0 {
                Ok(n) if n >= 180 => {}
                Ok(n) => e.push(format!(
                    "audit.retention_days: {n} is less than the 180 days audit records must be kept (R17.1)"
                )),
                Err(v) => e.push(format!("audit.retention_days: {v} is not a whole number of days (at least 180)")),
            }
        }
        let mut trunk_map = Vec::new();
        let mut entries = match self.sip.trunk_map {
            None => Vec::new(),
            Some(Setting(Ok(v))) => v,
            Some(Setting(Err(_))) => {
                e.push("sip.trunk_map must be an array of \"CIDR=TRUNK_ID\" strings".into());
                Vec::new()
            }
        };
        entries.extend(o.trunk_map.iter().cloned());
        for entry in &entries {
            match TrunkMapEntry::parse(entry) {
                Ok(t) => trunk_map.push(t),
                Err(msg) => e.push(format!("trunk map: {msg}")),
            }
        }
        let mut trusted_entries = match self.sip.trusted {
            None => Vec::new(),
            Some(Setting(Ok(v))) => v,
            Some(Setting(Err(_))) => {
                e.push("sip.trusted must be an array of CIDR strings".into());
                Vec::new()
            }
        };
        trusted_entries.extend(o.trusted.iter().cloned());
        let mut trusted = Vec::new();
        for t in &trusted_entries {
            match fanzha_sip::Cidr::parse(t) {
                Ok(c) => trusted.push(c),
                Err(msg) => e.push(format!("sip.trusted: {msg}")),
            }
        }
        let unknown_source = match self.sip.unknown_source.map(|s| s.0) {
            None => fanzha_sip::UnknownSource::Reject,
            Some(Ok(v)) if v == "reject" => fanzha_sip::UnknownSource::Reject,
            Some(Ok(v)) if v == "drop" => fanzha_sip::UnknownSource::Drop,
            Some(Ok(v)) => {
                e.push(format!(
                    "sip.unknown_source {v:?} is not \"reject\" or \"drop\""
                ));
                fanzha_sip::UnknownSource::Reject
            }
            Some(Err(v)) => {
                e.push(format!(
                    "sip.unknown_source: {v} is not \"reject\" or \"drop\""
                ));
                fanzha_sip::UnknownSource::Reject
            }
        };
        let shadow_text = match (&o.shadow, self.screening.shadow) {
            (Some(s), _) => s.clone(),
            (None, Some(Setting(Ok(v)))) => v.join(","),
            (None, Some(Setting(Err(_)))) => {
                e.push("screening.shadow must be an array of rule IDs".into());
                String::new()
            }
            (None, None) => String::new(),
        };
        let shadow = parse_rule_list(&shadow_text).unwrap_or_else(|err| {
            e.push(format!("screening.shadow: {err}"));
            RuleSet::EMPTY
        });
        let sip_config = SipConfig {
            generic_header: text(
                e,
                "sip.generic_header",
                self.sip.generic_header,
                "P-Generic-Number",
            ),
            trunk_map,
            use_603_plus: o.use_603_plus
                || flag(e, "sip.use_603_plus", self.sip.use_603_plus, false),
            redress_uri: text(
                e,
                "sip.redress_uri",
                self.sip.redress_uri,
                "https://fanzha.invalid/redress",
            ),
            trusted,
            unknown_source,
        };
        let log_decisions = flag(e, "decisions.enabled", self.decisions.enabled, true);
        let builtin = fanzha_detect::monitor::RulesFile::default;
        let rules = match self.monitor.rules {
            None => builtin(),
            Some(Setting(Err(_))) => {
                e.push("monitor.rules must be the path of a rules file".into());
                builtin()
            }
            Some(Setting(Ok(path))) => crate::monitor_cmd::load_rules(Path::new(&path))
                .unwrap_or_else(|errs| {
                    e.extend(errs.into_iter().map(|x| format!("monitor.rules: {x}")));
                    builtin()
                }),
        };
        let model = match self.monitor.model {
            None => None,
            Some(Setting(Ok(p))) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
            Some(Setting(Ok(p))) => {
                e.push(format!("monitor.model: {p} is not a readable file"));
                None
            }
            Some(Setting(Err(_))) => {
                e.push("monitor.model must be the path of a model file".into());
                None
            }
        };
        let kafka = kafka(e, self.kafka, o);
        let auto_dispose = match self.monitor.auto_dispose {
            None => fanzha_monitor::AutoDispose::default(),
            Some(Setting(Ok(v))) => fanzha_monitor::AutoDispose::parse(&v).unwrap_or_else(|err| {
                e.push(format!("monitor.auto_dispose: {err}"));
                fanzha_monitor::AutoDispose::default()
            }),
            Some(Setting(Err(_))) => {
                e.push(
                    "monitor.auto_dispose must be an array of \"LEVEL\" or \"LEVEL:RULE\"".into(),
                );
                fanzha_monitor::AutoDispose::default()
            }
        };
        let monitor = MonitorConfig {
            enabled: flag(e, "monitor.enabled", self.monitor.enabled, true),
            dispose: flag(e, "monitor.dispose", self.monitor.dispose, true),
            rules,
            model,
            kafka,
            auto_dispose,
        };
        if monitor.kafka.is_some() && !monitor.enabled {
            e.push("kafka is configured but monitor.enabled is false".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ServeConfig {
            http,
            tls,
            request_timeout,
            http_max_connections,
            sip,
            udp_threads,
            tcp_limits,
            sip_config,
            shadow,
            replica,
            refresh: Duration::from_millis(refresh_ms as u64),
            max_clock_skew_s,
            log_decisions,
            retention_days,
            decisions_fsync,
            decisions_on_failure,
            decisions_backlog_bytes,
            monitor,
        })
    }
}

fn address(
    e: &mut Vec<String>,
    name: &str,
    s: Option<Setting<String>>,
    default: &str,
) -> SocketAddr {
    let fallback = || default.parse().expect("default address");
    match s {
        None => fallback(),
        Some(Setting(Ok(a))) => a.parse().unwrap_or_else(|_| {
            e.push(format!(
                "{name}: {a:?} is not an address like 127.0.0.1:5060"
            ));
            fallback()
        }),
        Some(Setting(Err(v))) => {
            e.push(format!("{name}: {v} is not an address like 127.0.0.1:5060"));
            fallback()
        }
    }
}

fn whole(
    e: &mut Vec<String>,
    name: &str,
    s: Option<Setting<i64>>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> i64 {
    let (min, max) = (*range.start(), *range.end());
    match s {
        None => default,
        Some(Setting(Ok(n))) if range.contains(&n) => n,
        Some(Setting(Ok(n))) => {
            e.push(format!(
                "{name}: {n} is not a whole number in {min}..={max}"
            ));
            default
        }
        Some(Setting(Err(v))) => {
            e.push(format!(
                "{name}: {v} is not a whole number in {min}..={max}"
            ));
            default
        }
    }
}

/// A one-line string (values that go into SIP headers or client properties never hold a
/// line break).
fn text(e: &mut Vec<String>, name: &str, s: Option<Setting<String>>, default: &str) -> String {
    match s {
        None => default.to_string(),
        Some(Setting(Ok(v))) if v.contains(['\r', '\n', '\0']) => {
            e.push(format!("{name} must be one line"));
            default.to_string()
        }
        Some(Setting(Ok(v))) => v,
        Some(Setting(Err(v))) => {
            e.push(format!("{name}: {v} is not a string"));
            default.to_string()
        }
    }
}

fn flag(e: &mut Vec<String>, name: &str, s: Option<Setting<bool>>, default: bool) -> bool {
    match s {
        None => default,
        Some(Setting(Ok(b))) => b,
        Some(Setting(Err(v))) => {
            e.push(format!("{name}: {v} is not true or false"));
            default
        }
    }
}

/// A file a setting names: None when unset, Some(None) when set but unusable.
fn file(e: &mut Vec<String>, name: &str, s: Option<Setting<String>>) -> Option<Option<PathBuf>> {
    Some(match s? {
        Setting(Ok(p)) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        Setting(Ok(p)) => {
            e.push(format!("{name}: {p} is not a readable file"));
            None
        }
        Setting(Err(_)) => {
            e.push(format!("{name} must be the path of a PEM file"));
            None
        }
    })
}

/// `[kafka]` and the flags: the source, with its security settings as librdkafka
/// properties (protocol and SASL mechanism from the lists librdkafka supports, SASL
/// credentials required together).
fn kafka(
    e: &mut Vec<String>,
    k: Option<RawKafka>,
    o: &Overrides,
) -> Option<fanzha_monitor::kafka::KafkaSource> {
    let k = k.unwrap_or_default();
    let configured = k.brokers.is_some();
    let mut properties = Vec::new();
    let protocol = k
        .security_protocol
        .map(|s| text(e, "kafka.security_protocol", Some(s), ""));
    let mechanism = k
        .sasl_mechanism
        .map(|s| text(e, "kafka.sasl_mechanism", Some(s), ""));
    let username = k
        .sasl_username
        .map(|s| text(e, "kafka.sasl_username", Some(s), ""));
    let password = k
        .sasl_password
        .map(|s| text(e, "kafka.sasl_password", Some(s), ""));
    let ca = k
        .ssl_ca_location
        .map(|s| text(e, "kafka.ssl_ca_location", Some(s), ""));
    if let Some(p) = &protocol {
        match p.to_ascii_lowercase().as_str() {
            "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl" => {
                properties.push(("security.protocol".into(), p.to_ascii_lowercase()))
            }
            _ => e.push(format!(
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
                properties.push(("sasl.mechanism".into(), m.clone()))
            }
            _ => e.push(format!(
                "kafka.sasl_mechanism {m:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }
    match (sasl, &username, &password) {
        (true, Some(u), Some(p)) => {
            properties.push(("sasl.username".into(), u.clone()));
            properties.push(("sasl.password".into(), p.clone()));
        }
        (true, _, _) => e.push(
            "kafka.security_protocol sasl_* needs kafka.sasl_username and kafka.sasl_password".into(),
        ),
        (false, None, None) => {}
        (false, _, _) => e.push(
            "kafka.sasl_username/sasl_password are set but security_protocol is not sasl_plaintext or sasl_ssl".into(),
        ),
    }
    if let Some(ca) = ca {
        if !Path::new(&ca).is_file() {
            e.push(format!(
                "kafka.ssl_ca_location: {ca} is not a readable file"
            ));
        }
        properties.push(("ssl.ca.location".into(), ca));
    }
    let brokers = match (&o.kafka_brokers, configured) {
        (Some(b), _) => b.clone(),
        (None, true) => text(e, "kafka.brokers", k.brokers, ""),
        (None, false) => return None,
    };
    let source = fanzha_monitor::kafka::KafkaSource {
        brokers,
        topic: o
            .kafka_topic
            .clone()
            .unwrap_or_else(|| text(e, "kafka.topic", k.topic, "cdr")),
        group: o
            .kafka_group
            .clone()
            .unwrap_or_else(|| text(e, "kafka.group", k.group, "fanzha-monitor")),
        properties,
    };
    for (what, v) in [
        ("brokers", &source.brokers),
        ("topic", &source.topic),
        ("group", &source.group),
    ] {
        if v.trim().is_empty() {
            e.push(format!("kafka.{what} is empty"));
        }
    }
    Some(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match RawConfig::parse(text) {
            Err(e) => e,
            Ok(raw) => raw
                .validate(&Overrides::default())
                .err()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../docs/serve.example.toml");
        let c = RawConfig::parse(text)
            .unwrap()
            .validate(&Overrides::default())
            .unwrap();
        assert_eq!(c.sip.to_string(), "0.0.0.0:5060");
        assert_eq!(c.sip_config.trunk_map.len(), 3);
        assert_eq!(c.sip_config.trusted.len(), 2);
        assert_eq!(
            c.sip_config.unknown_source,
            fanzha_sip::UnknownSource::Reject
        );
        assert!(c.tls.is_none() && c.monitor.kafka.is_none());
    }

    #[test]
    fn nothing_configured_is_the_defaults() {
        let c = RawConfig::default()
            .validate(&Overrides::default())
            .unwrap();
        assert_eq!(c.http.to_string(), "127.0.0.1:8080");
        assert_eq!(
            (c.udp_threads, c.retention_days, c.log_decisions),
            (2, 180, true)
        );
        assert_eq!(c.refresh, Duration::from_millis(500));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let e = errors(
            "[sip]\nlisten = 5060\nudp_threads = 0\ngeneric_header = \"X\\r\\nInjected: 1\"\n\
             [screening]\nrefresh_ms = \"fast\"\nshadow = [\"no-such-rule\"]\n\
             [decisions]\nenabled = \"yes\"\n[audit]\nretention_days = 30\n\
             [http]\ntls_cert = \"/no/cert.pem\"\n",
        );
        for needle in [
            "sip.listen: 5060 is not an address",
            "sip.udp_threads: 0 is not a whole number in 1..=64",
            "sip.generic_header must be one line",
            "screening.refresh_ms: \"fast\"",
            "no-such-rule",
            "decisions.enabled: \"yes\" is not true or false",
            "audit.retention_days: 30 is less than the 180 days",
            "http.tls_cert: /no/cert.pem is not a readable file",
        ] {
            assert!(
                e.iter().any(|x| x.contains(needle)),
                "missing {needle:?} in {e:?}"
            );
        }
        assert_eq!(
            e.len(),
            9,
            "{e:?} (the lone tls_cert also lacks its tls_key)"
        );
    }

    #[test]
    fn unknown_sections_and_keys_are_named() {
        let e = errors("[bogus]\nx = 1\n[sip]\nlisten = \"127.0.0.1:5060\"\nlisen = 1\n");
        assert!(e.contains(&"unknown section [bogus]".to_string()), "{e:?}");
        assert!(e.contains(&"unknown key sip.lisen".to_string()), "{e:?}");
    }

    #[test]
    fn tls_needs_both_files() {
        let dir = std::env::temp_dir();
        let cert = dir.join(format!("fanzha-cfg-cert-{}.pem", std::process::id()));
        std::fs::write(&cert, "x").unwrap();
        let e = errors(&format!(
            "[http]\ntls_cert = {:?}\n",
            cert.to_str().unwrap()
        ));
        assert_eq!(e, ["http.tls_cert and http.tls_key are set together"]);
        let c = RawConfig::parse(&format!(
            "[http]\ntls_cert = {0:?}\ntls_key = {0:?}\n",
            cert.to_str().unwrap()
        ))
        .unwrap()
        .validate(&Overrides::default())
        .unwrap();
        assert!(c.tls.is_some());
        let _ = std::fs::remove_file(cert);
    }

    #[test]
    fn kafka_security_passes_through_checked() {
        let raw = "[kafka]\nbrokers = \"k:9092\"\nsecurity_protocol = \"SASL_SSL\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"u\"\nsasl_password = \"p\"\n";
        let c = RawConfig::parse(raw)
            .unwrap()
            .validate(&Overrides::default())
            .unwrap();
        let k = c.monitor.kafka.unwrap();
        assert_eq!(
            k.properties[0],
            ("security.protocol".into(), "sasl_ssl".into())
        );
        assert!(k.properties.contains(&("sasl.password".into(), "p".into())));
        assert!(
            !format!("{k:?}").contains("\"p\""),
            "the password is not in Debug output"
        );
        let e = errors("[kafka]\nbrokers = \"k:9092\"\nsecurity_protocol = \"sasl_plaintext\"\n");
        assert!(e[0].contains("needs kafka.sasl_username"), "{e:?}");
        let e = errors("[kafka]\nbrokers = \"k:9092\"\nsecurity_protocol = \"tls\"\n");
        assert!(e[0].contains("is not plaintext, ssl"), "{e:?}");
        let e = errors("[kafka]\nbrokers = \"k:9092\"\n[monitor]\nenabled = false\n");
        assert_eq!(e, ["kafka is configured but monitor.enabled is false"]);
    }

    #[test]
    fn the_trust_domain_and_the_stranger_policy() {
        let c = RawConfig::parse("[sip]\ntrusted = [\"10.0.0.0/8\"]\nunknown_source = \"drop\"\n")
            .unwrap()
            .validate(&Overrides {
                trusted: vec!["192.0.2.1".into()],
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(c.sip_config.trusted.len(), 2);
        assert_eq!(c.sip_config.unknown_source, fanzha_sip::UnknownSource::Drop);
        let e = errors("[sip]\ntrusted = [\"10.0.0.0/99\"]\nunknown_source = \"ignore\"\n");
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn flags_override_the_file() {
        let raw = RawConfig::parse("[http]\nlisten = \"not an address\"\n").unwrap();
        let o = Overrides {
            http: Some("127.0.0.1:9999".parse().unwrap()),
            use_603_plus: true,
            ..Overrides::default()
        };
        let c = raw.validate(&o).unwrap();
        assert_eq!(c.http.port(), 9999);
        assert!(c.sip_config.use_603_plus);
    }
}
