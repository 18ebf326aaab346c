//! The Kafka source: a consumer-group member reading a topic of call records partitioned by
//! caller, so instances scale horizontally and every number's records reach one monitor.
//! At least once: offsets are committed only after a poll's records were processed and
//! their alerts disposed of; disposal is idempotent, so a redelivery after a crash changes
//! nothing twice.

use crate::{Disposer, IngestReport, Pipeline};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where to read.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSource {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic of call records.
    pub topic: String,
    /// The consumer group (one per monitor deployment).
    pub group: String,
    /// librdkafka client properties passed through as configured (`security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`).
    pub properties: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field(
                "properties",
                &self
                    .properties
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            if k.contains("password") {
                                "***"
                            } else {
                                v.as_str()
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why the consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}

/// Retries a failing ledger until it answers or the consumer is stopped: offsets must not
/// be committed past records whose alerts were not disposed of.
struct Retrying<'a> {
    inner: &'a mut dyn Disposer,
    stop: &'a AtomicBool,
}

impl Disposer for Retrying<'_> {
    fn dispose(
        &mut self,
        alert: &fanzha_detect::monitor::Alert,
    ) -> Result<crate::Disposition, fanzha_ledger::StoreError> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.inner.dispose(alert) {
                Ok(changed) => return Ok(changed),
                Err(e) if self.stop.load(Ordering::Relaxed) => return Err(e),
                Err(e) => {
                    tracing::warn!(%e, number = %alert.number, "disposal failed; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Consumes `source` until `stop` is set: polls up to 1000 records or 100 ms, processes them
/// (refusing records that start after `not_after()`, the caller's clock plus its skew),
/// disposes of their alerts, calls `after_batch` (the binary refreshes the screening snapshot
/// there), then commits. Bad records are counted and logged, never fatal.
pub fn consume(
    source: &KafkaSource,
    pipeline: Arc<Mutex<Pipeline>>,
    disposer: &mut dyn Disposer,
    after_batch: &mut dyn FnMut(&IngestReport),
    not_after: &dyn Fn() -> i64,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &source.brokers)
        .set("group.id", &source.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("client.id", "fanzha-monitor");
    for (k, v) in &source.properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(&[&source.topic])?;
    tracing::info!(brokers = %source.brokers, topic = %source.topic, group = %source.group, "kafka consumer subscribed");
    let mut owned: Vec<(u64, Vec<u8>)> = Vec::with_capacity(1000);
    while !stop.load(Ordering::Relaxed) {
        owned.clear();
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        while owned.len() < 1000 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                None => break,
                Some(Ok(m)) => owned.push((
                    m.offset().max(0) as u64,
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Some(Err(e)) => {
                    tracing::warn!(%e, "kafka poll");
                    break;
                }
            }
        }
        if owned.is_empty() {
            continue;
        }
        // Detection holds the pipeline; disposal, which retries while the ledger is down,
        // does not (HTTP ingest goes on meanwhile, and its alerts wait for the ledger too).
        let (mut report, policy) = {
            let mut p = pipeline.lock().unwrap_or_else(|p| p.into_inner());
            p.set_not_after(not_after());
            let r = p.detect_messages(owned.iter().map(|(o, v)| (*o, v.as_slice())));
            (r, p.auto_dispose().clone())
        };
        let mut retrying = Retrying {
            inner: disposer,
            stop,
        };
        let report = crate::dispose_alerts(&policy, &mut report, &mut retrying).map(|()| {
            pipeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .count_disposals(report.disposals);
            report
        });
        let report = match report {
            Ok(r) => r,
            // Only when stopping with the ledger down: leave the offsets uncommitted.
            Err(e) => {
                tracing::warn!(%e, "stopping with a batch not disposed; it will be redelivered");
                break;
            }
        };
        for b in &report.errors {
            tracing::warn!(offset = b.line, reason = %b.reason, "bad call record");
        }
        after_batch(&report);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::warn!(%e, "kafka commit");
        }
    }
    Ok(())
}
