//! Renders BENCHMARKS.md: one table per figure, with the date and the machine.
use std::fmt::Write;
use std::path::Path;

use crate::stats::{median, percentile};

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
