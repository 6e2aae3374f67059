//! Renders BENCHMARKS.md: one table per figure, with the date and the machine.
use std::fmt::Write;
use std::path::Path;

use crate::cpu::CpuSample;
use crate::stats::{median, percentile};

/// What was changed to bring the CPU figures down, kept by hand beside the harness (the
/// before/after figures come from runs of this harness at the commits it names).
const CPU_NOTES: &str = include_str!("../../notes/cpu.md");
/// Tracing and metrics on the cold start (issue 17).
const COLD_START_NOTES: &str = include_str!("../../notes/cold-start.md");

pub struct ColdRow {
    name: String,
    median: f64,
    p90: f64,
    ratio: f64,
}

pub fn cold_row(name: &str, samples: &[f64], baseline_median: f64) -> ColdRow {
    let m = median(samples);
    ColdRow {
        name: name.to_owned(),
        median: m,
        p90: percentile(samples, 90.0),
        ratio: m / baseline_median,
    }
}

pub struct RouteTrips {
    pub operation: String,
    pub dynamodb: usize,
    pub detail: String,
    pub target: String,
}

pub struct Latency {
    pub route: String,
    pub samples: Vec<f64>,
}

pub struct Sweep {
    pub job: String,
    pub stored: usize,
    pub due: usize,
    pub processed: u64,
    pub items_read: u64,
    pub requests: usize,
    pub wall_ms: f64,
}

#[derive(Default)]
pub struct Report {
    sections: Vec<String>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    pub fn cold_start(&mut self, rows: Vec<ColdRow>, runs: usize) {
        let mut s = format!(
            "## 1. Cold start: exec → first poll of the Runtime API\n\n{runs} starts each, release profile, a local Runtime API stand-in. Ratio: median / hello-world median (target ≤ 1.5).\n\n| function | median ms | p90 ms | ratio |\n|---|---:|---:|---:|\n"
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} | {:.2} |",
                r.name, r.median, r.p90, r.ratio
            );
        }
        self.sections.push(s);
    }

    pub fn cold_start_notes(&mut self) {
        self.sections.push(COLD_START_NOTES.to_owned());
    }

    pub fn first_response(&mut self, rows: Vec<(String, Vec<f64>, String)>) {
        let mut s = String::from(
            "### Exec → first response (one real request against embedded dynoxide)\n\n| function | runs | median ms | p90 ms | response |\n|---|---:|---:|---:|---|\n",
        );
        for (name, samples, body) in rows {
            let status = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["statusCode"].as_u64())
                .map(|c| c.to_string())
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                s,
                "| {name} | {} | {:.2} | {:.2} | HTTP {status} |",
                samples.len(),
                median(&samples),
                percentile(&samples, 90.0)
            );
        }
        self.sections.push(s);
    }

    pub fn sizes(
        &mut self,
        bin_dir: &Path,
        zip_dir: Option<&Path>,
        zip_arch: &str,
        functions: &[&str],
    ) {
        let mut s = format!(
            "## 2. Size\n\nBinary: release profile (`opt-level=\"z\"`, fat LTO, 1 codegen unit, `panic=\"abort\"`, stripped), x86-64, in {}. Zip: `cargo lambda build --release --{zip_arch} --output-format zip` (target ≤ 2.5 MB).\n\n| function | binary MB | zip MB ({zip_arch}) |\n|---|---:|---:|\n",
            bin_dir.display()
        );
        let mb = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| format!("{:.2}", m.len() as f64 / 1_048_576.0))
                .unwrap_or_else(|_| "n/a".into())
        };
        for name in std::iter::once(&"hello-world").chain(functions) {
            let zip = zip_dir
                .map(|d| mb(&d.join(name).join("bootstrap.zip")))
                .unwrap_or_else(|| "n/a".into());
            let _ = writeln!(s, "| {name} | {} | {zip} |", mb(&bin_dir.join(name)));
        }
        self.sections.push(s);
    }

    pub fn round_trips(&mut self, rows: Vec<RouteTrips>) {
        let mut s = String::from(
            "## 3. Round trips: DynamoDB requests per operation (SDK interceptor)\n\nDeterministic, so `make test` asserts them too.\n\n| operation | DynamoDB requests | by operation | target |\n|---|---:|---|---|\n",
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.operation, r.dynamodb, r.detail, r.target
            );
        }
        self.sections.push(s);
    }

    pub fn latency(&mut self, rows: Vec<Latency>) {
        let mut s = String::from(
            "## 4. Warm latency: handler time, in-process, against embedded dynoxide over loopback\n\n| route | requests | p50 ms | p99 ms |\n|---|---:|---:|---:|\n",
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {:.3} |",
                r.route,
                r.samples.len(),
                percentile(&r.samples, 50.0),
                percentile(&r.samples, 99.0)
            );
        }
        self.sections.push(s);
    }

    pub fn sweep(&mut self, rows: Vec<Sweep>) {
        let mut s = String::from(
            "## 5. Sweep cost: the jobs read the due work, not the stored trials\n\n| job | trials stored | due | processed | items read | DynamoDB requests | wall ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} |",
                r.job, r.stored, r.due, r.processed, r.items_read, r.requests, r.wall_ms
            );
        }
        self.sections.push(s);
    }

    pub fn memory(&mut self, rows: Vec<(String, u64)>) {
        let mut s = String::from(
            "## 6. Memory: peak RSS (VmHWM) after 1,000 invocations (target < 32 MB)\n\n| function | peak RSS MB |\n|---|---:|\n",
        );
        for (name, kib) in rows {
            let _ = writeln!(s, "| {name} | {:.1} |", kib as f64 / 1024.0);
        }
        self.sections.push(s);
    }

    /// Per function: the median over rounds of CPU µs per invocation, beside the baseline's
    /// median (every baseline loop of every round).
    pub fn cpu(&mut self, worker: &Path, rounds: Vec<Vec<CpuSample>>) {
        let per_invocation = |s: &CpuSample| {
            let n = s.invocations.max(1) as f64;
            (
                (s.user_us + s.sys_us) / n,
                s.user_us / n,
                s.sys_us / n,
                s.wall_us / n,
            )
        };
        let mut names: Vec<String> = Vec::new();
        for s in rounds.iter().flatten() {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
        // The median sample by total CPU, shown whole (its user, sys and wall side by side), so
        // a row's columns come from one measured loop and add up.
        let stats = |name: &str| {
            let mut samples: Vec<_> = rounds
                .iter()
                .flatten()
                .filter(|s| s.name == name)
                .map(per_invocation)
                .collect();
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (cpu, user, sys, wall) = samples
                .get(samples.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN));
            (cpu, user, sys, wall, samples.len())
        };
        let invocations = rounds
            .iter()
            .flatten()
            .map(|s| s.invocations)
            .max()
            .unwrap_or(0);
        let (baseline, ..) = stats("baseline");
        let mut s = format!(
            "## 7. Warm CPU time per invocation\n\n\
             User + sys CPU (`getrusage(RUSAGE_SELF)`) of a process that runs only the functions' code \
             (`bench/cpu-worker`: {}, built with the functions' profile), over {invocations} warm invocations one \
             after another, against dynoxide and the Stripe stand-in served by **another** process. \
             Median of {} rounds (a fresh process and store each). Baseline: one `GetItem` with the same \
             client (`trials::aws::local_dynamodb`), nothing else. Neither side includes the Lambda \
             runtime's own work (reading the event, posting the response). At 128 MB a Lambda gets a \
             fraction of a core, so CPU per request is billed latency.\n\n\
             | function | CPU µs / invocation | user µs | sys µs | ratio to baseline | wall µs |\n\
             |---|---:|---:|---:|---:|---:|\n",
            worker.display(),
            rounds.len()
        );
        for name in names {
            let (cpu, user, sys, wall, _) = stats(&name);
            let label = if name == "baseline" {
                "**baseline**: one `GetItem` (own process, no log subscriber)".to_owned()
            } else {
                name.clone()
            };
            let _ = writeln!(
                s,
                "| {label} | {cpu:.0} | {user:.0} | {sys:.0} | {:.2} | {wall:.0} |",
                cpu / baseline
            );
        }
        s.push('\n');
        s.push_str(CPU_NOTES);
        self.sections.push(s);
    }

    pub fn render(&self) -> String {
        let machine = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let date = utc_now();
        format!(
            "# Benchmarks\n\nGenerated by `make bench` on {date}, {machine}, {cores} cores, {}.\nFigures, not assertions: rerun `make bench` to reproduce.\n\n{}",
            std::env::consts::ARCH,
            self.sections.join("\n")
        )
    }
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
