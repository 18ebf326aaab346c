//! Validator throughput (issue targets: number parse + classify ≥ 5 M/s on one core,
//! resident ID validation ≥ 10 M/s). `cargo bench -p fanzha-model`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fanzha_model::number::CnTables;
use fanzha_model::resident_id::{check_char, validate, ResidentId};
use fanzha_model::{parse, Date};

const TODAY: Date = Date {
    year: 2026,
    month: 11,
    day: 29,
};

/// A realistic mix of what gateways present: mostly mobiles in every written form, some
/// fixed lines, 400 numbers, service numbers and foreign numbers.
fn number_mix() -> Vec<String> {
    let mut v = Vec::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let segs = [
        "138", "139", "135", "186", "189", "177", "170", "199", "150", "147",
    ];
    for i in 0..1000 {
        let r = next();
        let seg = segs[(r % segs.len() as u64) as usize];
        let sub = r / 16 % 100_000_000;
        v.push(match i % 10 {
            0..=3 => format!("{seg}{sub:08}"),
            4 => format!("+86{seg}{sub:08}"),
            5 => format!("0086 {seg} {sub:08}"),
            6 => format!("010{:08}", 60_000_000 + sub % 10_000_000),
            7 => format!("0371{:08}", 60_000_000 + sub % 10_000_000),
            8 => format!("400{:07}", sub % 10_000_000),
            _ => format!("17951{seg}{sub:08}"),
        });
    }
    v
}

fn bench_numbers(c: &mut Criterion) {
    CnTables::get();
    let mix = number_mix();
    let mut g = c.benchmark_group("number");
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function("parse_classify_mix", |b| {
        b.iter(|| {
            let mut valid = 0u32;
            for s in &mix {
                if let Ok(n) = parse(black_box(s)) {
                    valid += n.classify().valid as u32;
                }
            }
            valid
        })
    });
    let mobiles: Vec<String> = mix
        .iter()
        .filter(|s| s.len() == 11 && s.starts_with('1'))
        .cloned()
        .collect();
    g.throughput(Throughput::Elements(mobiles.len() as u64));
    g.bench_function("parse_classify_mobile", |b| {
        b.iter(|| {
            let mut valid = 0u32;
            for s in &mobiles {
                if let Ok(n) = parse(black_box(s)) {
                    valid += n.classify().valid as u32;
                }
            }
            valid
        })
    });
    g.finish();
}

fn bench_ids(c: &mut Criterion) {
    let regions = ["110101", "440305", "510104", "650102", "320102", "420106"];
    let ids: Vec<String> = (0..1000u32)
        .map(|i| {
            let first17 = format!(
                "{}{:04}{:02}{:02}{:03}",
                regions[i as usize % regions.len()],
                1950 + i % 60,
                1 + i % 12,
                1 + i % 28,
                i % 1000
            );
            let c = check_char(first17.as_bytes());
            format!("{first17}{c}")
        })
        .collect();
    ResidentId::parse(&ids[0], TODAY).unwrap();
    let mut g = c.benchmark_group("resident_id");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("validate", |b| {
        b.iter(|| {
            let mut valid = 0u32;
            for s in &ids {
                valid += validate(black_box(s), TODAY).is_ok() as u32;
            }
            valid
        })
    });
    g.finish();
}

criterion_group!(benches, bench_numbers, bench_ids);
criterion_main!(benches);
