//! `make bench`: the numbers that justify Rust on Lambda, rerunnable by anyone.
//!
//! ```text
//! trials-bench --bin-dir DIR [--zip-dir DIR] [--starts N] [--out BENCHMARKS.md]
//! ```
//! Figures, not assertions: nothing here fails because a number is high.
mod cold_start;
mod report;
mod runtime_api;
mod stats;

use std::path::PathBuf;

use report::Report;

const FUNCTIONS: [&str; 7] = [
    "start",
    "status",
    "convert",
    "cancel",
    "stripe-webhook",
    "expire",
    "purge",
];

struct Args {
    bin_dir: PathBuf,
    zip_dir: Option<PathBuf>,
    zip_arch: String,
    starts: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bin_dir: PathBuf::from("target/release"),
        zip_dir: None,
        zip_arch: "x86-64".into(),
        starts: 20,
        out: PathBuf::from("BENCHMARKS.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bin-dir" => args.bin_dir = value()?.into(),
            "--zip-dir" => args.zip_dir = Some(value()?.into()),
            "--zip-arch" => args.zip_arch = value()?,
            "--starts" => args.starts = value()?.parse().map_err(|_| "--starts needs a number")?,
            "--out" => args.out = value()?.into(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("trials-bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut report = Report::new();
    let fixtures = fixtures::Fixtures::start().await?;

    // 1. Cold start.
    let (api, runtime_addr) = runtime_api::RuntimeApi::start().await;
    let hello = cold_start::time_to_first_poll(
        &api,
        &runtime_addr,
        &args.bin_dir.join("hello-world"),
        &[],
        args.starts,
    )
    .await?;
    let hello_median = stats::median(&hello);
    let mut rows = vec![report::cold_row(
        "hello-world (baseline)",
        &hello,
        hello_median,
    )];
    for name in FUNCTIONS {
        let samples = cold_start::time_to_first_poll(
            &api,
            &runtime_addr,
            &args.bin_dir.join(name),
            &fixtures.env,
            args.starts,
        )
        .await?;
        rows.push(report::cold_row(name, &samples, hello_median));
    }
    report.cold_start(rows, args.starts);

    let mut first = Vec::new();
    for (name, event) in [
        ("start", fixtures::Event::Start),
        ("status", fixtures::Event::Status),
    ] {
        let (samples, body) = cold_start::time_to_first_response(
            &api,
            &runtime_addr,
            &args.bin_dir.join(name),
            &fixtures.env,
            |run| fixtures.event(event, run),
            args.starts.min(10),
        )
        .await?;
        first.push((name.to_owned(), samples, body));
    }
    report.first_response(first);

    // 2. Size.
    report.sizes(
        &args.bin_dir,
        args.zip_dir.as_deref(),
        &args.zip_arch,
        &FUNCTIONS,
    );

    // 3-6: in-process figures against embedded dynoxide, and memory under load.
    report.round_trips(fixtures::round_trips().await?);
    report.latency(fixtures::warm_latency(10_000).await?);
    report.sweep(fixtures::sweep_cost().await?);
    let mut memory = Vec::new();
    for name in ["start", "status", "expire"] {
        let events = fixtures.load(name, 1_000);
        let kib = cold_start::peak_rss_kib(
            &api,
            &runtime_addr,
            &args.bin_dir.join(name),
            &fixtures.env,
            events,
        )
        .await?;
        memory.push((name.to_owned(), kib));
    }
    report.memory(memory);

    let text = report.render();
    println!("{text}");
    std::fs::write(&args.out, text).map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(())
}

mod fixtures;
