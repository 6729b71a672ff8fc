//! What a run measured: per-operation latency histograms, error counts, and the report built
//! from them (text for people, JSON for scripts).
//!
//! A [`Tally`] is one connection's record; tallies merge into the run's. Merging is
//! commutative and associative (histograms add, counts add, the earliest first error wins), so
//! the order in which threads finish never changes the report.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::constants::LATENCY_SIGNIFICANT_DIGITS;

/// The kinds of operation a driver issues; each gets its own latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A single-key read (`load`).
    Get,
    /// A single-key write (`load`).
    Put,
    /// One frame sent and received back (`echo`).
    Echo,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 3] = [OpKind::Get, OpKind::Put, OpKind::Echo];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Echo => "echo",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing from a small range: a thread only pays for the latencies it saw.
    Histogram::new(LATENCY_SIGNIFICANT_DIGITS)
        .expect("LATENCY_SIGNIFICANT_DIGITS is a valid hdrhistogram precision")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Latencies (µs) per operation kind and errors, of one connection or of a whole run.
#[derive(Clone, Debug)]
pub struct Tally {
    latencies_us: [Histogram<u64>; OpKind::ALL.len()],
    errors: u64,
    /// The earliest error: when (since the run started) and what.
    first_error: Option<(Duration, String)>,
    connections_given_up: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Self {
            latencies_us: std::array::from_fn(|_| new_histogram()),
            errors: 0,
            first_error: None,
            connections_given_up: 0,
        }
    }

    /// Records one successful operation.
    pub fn record(&mut self, kind: OpKind, latency: Duration) {
        let h = &mut self.latencies_us[kind.index()];
        let us = micros(latency);
        // `record` grows the histogram; `saturating_record` would clamp to its current range
        // (about 2 ms for a fresh one) instead. Only a value past the histogram's range at
        // full growth (centuries) falls back to clamping.
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }

    /// Records one failed operation, `at` after the run started.
    pub fn record_error(&mut self, at: Duration, message: &str) {
        self.errors += 1;
        if self.first_error.as_ref().is_none_or(|(t, _)| at < *t) {
            self.first_error = Some((at, message.to_owned()));
        }
    }

    /// Records that a connection stopped early after too many consecutive errors.
    pub fn record_give_up(&mut self) {
        self.connections_given_up += 1;
    }

    /// Adds `other` into `self` (commutative, associative).
    pub fn merge(&mut self, other: &Tally) {
        for (mine, theirs) in self.latencies_us.iter_mut().zip(&other.latencies_us) {
            mine.add(theirs)
                .expect("auto-resizing histograms accept any other histogram");
        }
        self.errors += other.errors;
        self.connections_given_up += other.connections_given_up;
        if let Some((at, message)) = &other.first_error {
            if self
                .first_error
                .as_ref()
                .is_none_or(|(t, m)| (at, message) < (t, m))
            {
                self.first_error = Some((*at, message.clone()));
            }
        }
    }

    /// Latencies of one kind.
    pub fn latencies_us(&self, kind: OpKind) -> &Histogram<u64> {
        &self.latencies_us[kind.index()]
    }

    /// Successful operations of one kind.
    pub fn ops(&self, kind: OpKind) -> u64 {
        self.latencies_us(kind).len()
    }

    /// Failed operations.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The earliest error's message.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_ref().map(|(_, m)| m.as_str())
    }

    /// Connections that stopped early after too many consecutive errors.
    pub fn connections_given_up(&self) -> u64 {
        self.connections_given_up
    }
}

/// One row of a report: figures of one operation kind, or of all of them (`total`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// `get`, `put`, `echo` or `total`.
    pub op: String,
    /// Successful operations measured.
    pub ops: u64,
    /// Successful operations per second of measured time.
    pub ops_per_sec: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median latency.
    pub p50_us: u64,
    /// 99th percentile latency.
    pub p99_us: u64,
    /// 99.9th percentile latency.
    pub p999_us: u64,
    /// Largest latency.
    pub max_us: u64,
}

impl Summary {
    fn of(op: &str, h: &Histogram<u64>, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        let empty = h.is_empty();
        let pick = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        Self {
            op: op.to_owned(),
            ops: h.len(),
            ops_per_sec: if secs > 0.0 {
                h.len() as f64 / secs
            } else {
                0.0
            },
            mean_us: if empty { 0.0 } else { h.mean() },
            p50_us: pick(0.5),
            p99_us: pick(0.99),
            p999_us: pick(0.999),
            max_us: if empty { 0 } else { h.max() },
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// What ran (`load`, `echo`).
    pub title: String,
    /// Connections (driver threads).
    pub connections: usize,
    /// Requests each connection kept in flight.
    pub pipeline: usize,
    /// Measured time (warm-up excluded).
    pub elapsed: Duration,
    /// Everything measured.
    pub tally: Tally,
}

/// The JSON form of a report.
#[derive(Serialize)]
struct JsonReport<'a> {
    title: &'a str,
    connections: usize,
    pipeline: usize,
    elapsed_secs: f64,
    results: Vec<Summary>,
    errors: u64,
    first_error: Option<&'a str>,
    connections_given_up: u64,
}

impl Report {
    /// One row per kind that completed operations, then `total` (always present).
    pub fn summaries(&self) -> Vec<Summary> {
        let mut total = new_histogram();
        let mut rows = Vec::new();
        for kind in OpKind::ALL {
            let h = self.tally.latencies_us(kind);
            if h.is_empty() {
                continue;
            }
            rows.push(Summary::of(kind.name(), h, self.elapsed));
            total
                .add(h)
                .expect("auto-resizing histograms accept any other histogram");
        }
        rows.push(Summary::of("total", &total, self.elapsed));
        rows
    }

    /// The report for people: a header, a latency table (µs), then errors.
    pub fn to_text(&self) -> String {
        let mut rows = self.summaries();
        if rows.len() == 2 {
            rows.pop(); // one kind only: its row already is the total
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} connection{} x pipeline {}, {:.2} s measured",
            self.title,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.pipeline,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{:<6} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op", "ops", "ops/s", "mean µs", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "{:<6} {:>12} {:>12.1} {:>9.1} {:>9} {:>9} {:>9} {:>9}",
                r.op, r.ops, r.ops_per_sec, r.mean_us, r.p50_us, r.p99_us, r.p999_us, r.max_us
            );
        }
        let _ = write!(out, "errors: {}", self.tally.errors());
        if let Some(first) = self.tally.first_error() {
            let _ = write!(out, " (first: {first})");
        }
        out.push('\n');
        if self.tally.connections_given_up() > 0 {
            let _ = writeln!(
                out,
                "connections that gave up after repeated errors: {}",
                self.tally.connections_given_up()
            );
        }
        out
    }

    /// The report for scripts: the same figures as [`Report::to_text`], as JSON.
    pub fn to_json(&self) -> String {
        let json = JsonReport {
            title: &self.title,
            connections: self.connections,
            pipeline: self.pipeline,
            elapsed_secs: self.elapsed.as_secs_f64(),
            results: self.summaries(),
            errors: self.tally.errors(),
            first_error: self.tally.first_error(),
            connections_given_up: self.tally.connections_given_up(),
        };
        serde_json::to_string_pretty(&json).expect("a report always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn tally_of(kind: OpKind, latencies: &[u64]) -> Tally {
        let mut t = Tally::new();
        for &l in latencies {
            t.record(kind, us(l));
        }
        t
    }

    #[test]
    fn merge_adds_histograms_and_counts() {
        let mut a = tally_of(OpKind::Get, &[10, 20, 30]);
        let b = tally_of(OpKind::Put, &[100, 200]);
        let mut c = tally_of(OpKind::Get, &[40]);
        c.record_error(us(5), "late");
        a.merge(&b);
        a.merge(&c);
        assert_eq!(a.ops(OpKind::Get), 4);
        assert_eq!(a.ops(OpKind::Put), 2);
        assert_eq!(a.ops(OpKind::Echo), 0);
        assert_eq!(a.errors(), 1);
        assert_eq!(a.latencies_us(OpKind::Get).max(), 40);
    }

    #[test]
    fn merge_is_order_independent_and_keeps_earliest_error() {
        let mut x = tally_of(OpKind::Echo, &[1, 2]);
        x.record_error(us(300), "second");
        let mut y = tally_of(OpKind::Echo, &[3]);
        y.record_error(us(100), "first");
        y.record_error(us(200), "ignored");
        y.record_give_up();
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        for t in [&xy, &yx] {
            assert_eq!(t.errors(), 3);
            assert_eq!(t.first_error(), Some("first"));
            assert_eq!(t.ops(OpKind::Echo), 3);
            assert_eq!(t.connections_given_up(), 1);
        }
        assert_eq!(xy.latencies_us(OpKind::Echo), yx.latencies_us(OpKind::Echo));
    }

    #[test]
    fn summaries_compute_rate_percentiles_and_total() {
        let mut t = tally_of(OpKind::Get, &(1..=1000).collect::<Vec<_>>());
        t.merge(&tally_of(OpKind::Put, &[5000; 1000]));
        let report = Report {
            title: "load".into(),
            connections: 2,
            pipeline: 1,
            elapsed: Duration::from_secs(2),
            tally: t,
        };
        let rows = report.summaries();
        let names: Vec<_> = rows.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(names, ["get", "put", "total"]);
        let get = &rows[0];
        assert_eq!(get.ops, 1000);
        assert!((get.ops_per_sec - 500.0).abs() < 1e-9);
        assert_eq!(get.p50_us, 500);
        assert_eq!(get.p99_us, 990);
        assert_eq!(get.max_us, 1000);
        let total = &rows[2];
        assert_eq!(total.ops, 2000);
        assert!((total.ops_per_sec - 1000.0).abs() < 1e-9);
        assert_eq!(total.p50_us, 1000);
        assert!(total.max_us >= 5000 && total.max_us <= 5005, "3 digits");
    }

    #[test]
    fn large_latencies_grow_the_histogram_instead_of_clamping() {
        let t = tally_of(OpKind::Put, &[10, 5_000, 3_000_000]);
        let h = t.latencies_us(OpKind::Put);
        assert_eq!(h.len(), 3);
        assert!(h.max() >= 3_000_000 && h.max() < 3_004_000, "{}", h.max());
        assert!(
            h.value_at_quantile(0.5) >= 5_000,
            "{}",
            h.value_at_quantile(0.5)
        );
        let mut huge = Tally::new();
        huge.record(OpKind::Get, Duration::MAX);
        assert_eq!(huge.ops(OpKind::Get), 1);
    }

    #[test]
    fn empty_report_has_zero_total_and_no_division_by_zero() {
        let report = Report {
            title: "echo".into(),
            connections: 1,
            pipeline: 1,
            elapsed: Duration::ZERO,
            tally: Tally::new(),
        };
        let rows = report.summaries();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ops, 0);
        assert_eq!(rows[0].ops_per_sec, 0.0);
        assert_eq!(rows[0].max_us, 0);
        assert!(report.to_text().contains("errors: 0"));
    }

    #[test]
    fn text_shows_rows_errors_and_drops_redundant_total() {
        let mut t = tally_of(OpKind::Echo, &[50, 60]);
        t.record_error(us(1), "connection reset");
        let report = Report {
            title: "echo".into(),
            connections: 1,
            pipeline: 4,
            elapsed: Duration::from_secs(1),
            tally: t,
        };
        let text = report.to_text();
        assert!(text.starts_with("echo: 1 connection x pipeline 4, 1.00 s measured\n"));
        assert!(text.contains("\necho "));
        assert!(
            !text.contains("\ntotal "),
            "one kind: no separate total\n{text}"
        );
        assert!(text.contains("errors: 1 (first: connection reset)"));
    }

    #[test]
    fn json_carries_the_same_figures() {
        let mut t = tally_of(OpKind::Put, &[7, 8, 9]);
        t.record_error(us(3), "server error: \"quoted\"");
        let report = Report {
            title: "load".into(),
            connections: 3,
            pipeline: 2,
            elapsed: Duration::from_millis(1500),
            tally: t,
        };
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["title"], "load");
        assert_eq!(v["connections"], 3);
        assert_eq!(v["pipeline"], 2);
        assert_eq!(v["elapsed_secs"], 1.5);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["first_error"], "server error: \"quoted\"");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["op"], "put");
        assert_eq!(results[0]["ops"], 3);
        assert_eq!(results[0]["max_us"], 9);
        assert_eq!(results[1]["op"], "total");
        assert_eq!(results[1]["ops_per_sec"], 2.0);
    }
}
