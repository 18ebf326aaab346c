//! `fanzha bench http`: what the door costs a gateway. The same screening handler is served
//! on loopback twice: through the router as shipped (bearer token checked by the guard) and
//! bare (no guard: the figure before authentication existed). Keep-alive clients send one
//! call per request; rounds alternate so both see the same machine.

use anyhow::{Context, Result};
use fanzha_api::auth::{AuthConfig, Authenticator, Caller};
use fanzha_api::metrics::Metrics;
use fanzha_api::AppState;
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args)]
pub struct HttpArgs {
    /// Requests per round.
    #[arg(long, default_value_t = 40_000)]
    requests: u64,
    /// Client connections (keep-alive), one thread each.
    #[arg(long, default_value_t = 4)]
    connections: u64,
    /// Rounds of each (alternated).
    #[arg(long, default_value_t = 5)]
    rounds: u64,
}

#[derive(Serialize)]
struct Figures {
    requests: u64,
    connections: u64,
    baseline_per_sec: f64,
    authenticated_per_sec: f64,
    ratio: f64,
    rounds: Vec<(f64, f64)>,
    /// Nanoseconds per request through the router alone (no socket, one thread), median of
    /// the rounds: bare, and through the guard.
    router_ns_bare: f64,
    router_ns_authenticated: f64,
}

const CALL: &str = r#"{"id":"b","ts":"2026-11-30T10:00:00+08:00","trunk":"intl-a","caller":"+85291234567","callee":"13912345678"}"#;

pub fn run(args: HttpArgs) -> Result<ExitCode> {
    let tmp = tempdir()?;
    let store = fanzha_ledger_sqlite::SqliteStore::open(&tmp.join("ledger.sqlite"))?;
    let access = fanzha_ledger_sqlite::SqliteStore::open(&tmp.join("ledger.sqlite"))?;
    let vault = fanzha_ledger::PiiVault::new(&fanzha_ledger::PiiVault::generate_key()?)?;
    let mut ledger = fanzha_ledger::Ledger::new(
        Box::new(store) as Box<dyn fanzha_ledger::Store>,
        vault.clone(),
    );
    let actor = crate::backend::StoreArgs::actor_named("bench");
    ledger.import_csv(
        fanzha_ledger::Kind::Trunks,
        b"trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nintl-a,international,,,,false,active\n",
        &actor,
        &mut |_| {},
    )?;
    let (snapshot, _) = fanzha_screen::compile::compile(ledger.store().as_mut())?;
    let engine = Arc::new(fanzha_screen::Engine::new(snapshot, Default::default()));
    let mut key = [0u8; 32];
    fanzha_auth::credential::fill_random(&mut key)?;
    let auth = Authenticator::new(
        Box::new(access),
        fanzha_auth::AuditKey::new(&key).context("audit key")?,
        vault,
        AuthConfig::default(),
    )?;
    let now = crate::backend::now();
    let token = auth
        .add_token(
            "bench-gw",
            fanzha_auth::Role::Gateway,
            1,
            &Caller::local("bench"),
            &now,
        )?
        .token;
    let state = AppState {
        engine,
        ledger: Arc::new(Mutex::new(ledger)),
        auth: Arc::new(auth),
        log: None,
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(crate::backend::SystemClock),
        monitor: None,
        max_clock_skew_s: 300,
        request_timeout: std::time::Duration::from_secs(30),
    };
    let guarded = fanzha_api::app(state.clone());
    let bare = axum::Router::new()
        .route(
            "/v1/screen",
            axum::routing::post(fanzha_api::routes::screen::screen),
        )
        .with_state(state);
    // The service's runtime, as `serve` builds it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let serve = |router: axum::Router| -> Result<SocketAddr> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        rt.spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ok(addr)
    };
    let guarded_addr = serve(guarded.clone())?;
    let bare_addr = serve(bare.clone())?;
    // Warm both (connections, allocator, caches).
    load(bare_addr, None, args.requests / 10, args.connections)?;
    load(
        guarded_addr,
        Some(&token),
        args.requests / 10,
        args.connections,
    )?;
    // The router alone: what the guard adds to a request, without the network's noise.
    let one = tokio::runtime::Builder::new_current_thread().build()?;
    let mut router_rounds = Vec::new();
    for _ in 0..args.rounds {
        let b = one.block_on(in_process(&bare, None, args.requests))?;
        let a = one.block_on(in_process(&guarded, Some(&token), args.requests))?;
        eprintln!("router: bare {b:.0} ns, authenticated {a:.0} ns per request");
        router_rounds.push((b, a));
    }
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let b = load(bare_addr, None, args.requests, args.connections)?;
        let a = load(guarded_addr, Some(&token), args.requests, args.connections)?;
        eprintln!(
            "round: bare {b:.0}/s, authenticated {a:.0}/s, ratio {:.3}",
            a / b
        );
        rounds.push((b, a));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let baseline = median(rounds.iter().map(|r| r.0).collect());
    let authenticated = median(rounds.iter().map(|r| r.1).collect());
    let ratio = median(rounds.iter().map(|r| r.1 / r.0).collect());
    println!(
        "{}",
        serde_json::to_string(&Figures {
            requests: args.requests,
            connections: args.connections,
            baseline_per_sec: baseline.round(),
            authenticated_per_sec: authenticated.round(),
            ratio: (ratio * 1000.0).round() / 1000.0,
            rounds,
            router_ns_bare: median(router_rounds.iter().map(|r| r.0).collect()).round(),
            router_ns_authenticated: median(router_rounds.iter().map(|r| r.1).collect()).round(),
        })?
    );
    drop(rt);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds per request through `router` (tower `oneshot`, no socket).
async fn in_process(router: &axum::Router, token: Option<&str>, requests: u64) -> Result<f64> {
    use tower::ServiceExt;
    let started = Instant::now();
    for _ in 0..requests {
        let mut req = axum::http::Request::post("/v1/screen")
            .header("content-type", "application/json")
            .extension(axum::extract::ConnectInfo(SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = router
            .clone()
            .oneshot(req.body(axum::body::Body::from(CALL))?)
            .await?;
        anyhow::ensure!(resp.status() == 200, "answer {}", resp.status());
        let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    }
    Ok(started.elapsed().as_nanos() as f64 / requests as f64)
}

fn tempdir() -> Result<std::path::PathBuf> {
    let p = std::env::temp_dir().join(format!("fanzha-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

/// `requests` POSTs over `connections` keep-alive connections; requests per second.
fn load(addr: SocketAddr, token: Option<&str>, requests: u64, connections: u64) -> Result<f64> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/screen HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    let per = requests / connections.max(1);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let request = request.as_bytes();
                s.spawn(move || -> Result<()> {
                    let mut stream = TcpStream::connect(addr)?;
                    stream.set_nodelay(true)?;
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut line = String::new();
                    let mut body = Vec::new();
                    for _ in 0..per {
                        stream.write_all(request)?;
                        line.clear();
                        reader.read_line(&mut line)?;
                        anyhow::ensure!(line.starts_with("HTTP/1.1 200"), "answer: {line:?}");
                        let mut length = 0usize;
                        loop {
                            line.clear();
                            reader.read_line(&mut line)?;
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse()?;
                            }
                        }
                        body.resize(length, 0);
                        reader.read_exact(&mut body)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        }
        Ok(())
    })?;
    Ok((per * connections) as f64 / started.elapsed().as_secs_f64())
}
