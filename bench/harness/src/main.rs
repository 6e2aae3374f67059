//! `make bench`: the numbers that justify Rust on Lambda, rerunnable by anyone.
//!
//! ```text
//! trials-bench --bin-dir DIR [--zip-dir DIR] [--starts N] [--out BENCHMARKS.md]
//!              [--cpu-rounds 3] [--cpu-invocations 1000] [--only cold,size,trips,latency,sweep,memory,cpu]
//! trials-bench --bin-dir DIR --serve
//! ```
//! `--serve`: a store and a Stripe stand-in for profiling `cpu-worker` by hand; prints the
//! worker's command line and serves until killed.
//! Figures, not assertions: nothing here fails because a number is high.
mod cold_start;
mod cpu;
mod report;
mod runtime_api;
mod stats;

use std::path::PathBuf;

use report::Report;

const FUNCTIONS: [&str; 10] = [
    "start",
    "status",
    "convert",
    "cancel",
    "stripe-webhook",
    "expire",
    "purge",
    "publish",
    "usage",
    "manage",
];

/// What a function's process gets besides the shared store settings: `publish` builds its
/// EventBridge client at init when it has a bus, as deployed (the cold-start figures never
/// invoke it, so nothing is sent anywhere).
fn extra_env(function: &str) -> Vec<(String, String)> {
    match function {
        "publish" => vec![("EVENT_BUS_NAME".into(), "trials-bench-bus".into())],
        _ => Vec::new(),
    }
}

/// Where the sections `make bench` does not measure begin in BENCHMARKS.md.
const KEPT_MARKER: &str =
    "<!-- Below: sections `make bench` does not measure; it keeps them as they are. -->";

struct Args {
    bin_dir: PathBuf,
    zip_dir: Option<PathBuf>,
    zip_arch: String,
    starts: usize,
    out: PathBuf,
    cpu_rounds: usize,
    cpu_invocations: usize,
    /// Sections to run (all when `None`).
    only: Option<Vec<String>>,
    serve: bool,
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bin_dir: PathBuf::from("target/release"),
        zip_dir: None,
        zip_arch: "x86-64".into(),
        starts: 20,
        out: PathBuf::from("BENCHMARKS.md"),
        cpu_rounds: 3,
        cpu_invocations: 1_000,
        only: None,
        serve: false,
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
            "--cpu-rounds" => {
                args.cpu_rounds = value()?
                    .parse()
                    .map_err(|_| "--cpu-rounds needs a number")?
            }
            "--cpu-invocations" => {
                args.cpu_invocations = value()?
                    .parse()
                    .map_err(|_| "--cpu-invocations needs a number")?
            }
            "--only" => args.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--serve" => args.serve = true,
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
    if args.serve {
        return cpu::serve(&args.bin_dir.join("cpu-worker")).await;
    }
    let mut report = Report::new();
    // The function processes' store (1,100 API keys to write): only for sections that run them.
    let fixtures = match args.runs("cold") || args.runs("memory") {
        true => Some(fixtures::Fixtures::start().await?),
        false => None,
    };

    // 1. Cold start.
    if let Some(fixtures) = fixtures.as_ref().filter(|_| args.runs("cold")) {
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
            let mut env = fixtures.env.clone();
            env.extend(extra_env(name));
            let samples = cold_start::time_to_first_poll(
                &api,
                &runtime_addr,
                &args.bin_dir.join(name),
                &env,
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
        report.cold_start_notes();
    }

    // 2. Size.
    if args.runs("size") {
        report.sizes(
            &args.bin_dir,
            args.zip_dir.as_deref(),
            &args.zip_arch,
            &FUNCTIONS,
        );
    }

    // 3-6: in-process figures against embedded dynoxide, and memory under load.
    if args.runs("trips") {
        report.round_trips(fixtures::round_trips().await?);
    }
    if args.runs("latency") {
        report.latency(fixtures::warm_latency(10_000).await?);
    }
    if args.runs("sweep") {
        report.sweep(fixtures::sweep_cost().await?);
    }
    if let Some(fixtures) = fixtures.as_ref().filter(|_| args.runs("memory")) {
        let (api, runtime_addr) = runtime_api::RuntimeApi::start().await;
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
    }

    // 7. Warm CPU per invocation, in a process of its own.
    if args.runs("cpu") {
        let worker = args.bin_dir.join("cpu-worker");
        let rounds = cpu::warm_cpu(&worker, args.cpu_rounds, args.cpu_invocations).await?;
        report.cpu(&worker, rounds);
    }

    let text = report.render();
    println!("{text}");
    // What follows the marker in the file (the chaos figures: `make chaos`) is not measured
    // here: it is kept as it is.
    let kept = std::fs::read_to_string(&args.out)
        .ok()
        .and_then(|old| old.find(KEPT_MARKER).map(|at| old[at..].to_owned()));
    let text = match kept {
        Some(kept) => format!("{}\n\n{kept}", text.trim_end()),
        None => text,
    };
    std::fs::write(&args.out, text).map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(())
}

mod fixtures;
