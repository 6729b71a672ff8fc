//! What a run measured: per-operation latency histograms, error and miss counts, and the
//! report built from them (text for people, JSON for scripts).
//!
//! A [`Tally`] is one driver thread's record; tallies merge into the run's. Merging is
//! commutative and associative (histograms add, counts add, the earliest first error wins),
//! so the order in which threads finish never changes the report.
//!
//! Latencies are nanoseconds. `latency` runs from when the operation was due (its slot in an
//! open-loop schedule, or when a closed loop started it) to its answer, which is what a user
//! waits: with a schedule it includes queueing behind a slow server (coordinated omission
//! corrected). `service` runs from when its request was written to the socket.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::constants::LATENCY_SIGNIFICANT_DIGITS;

/// The kinds of operation; each gets its own histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// A single-key read.
    Read,
    /// A write of an existing record.
    Update,
    /// A write of a new record (workload D, and loading).
    Insert,
    /// A read then a write of the same record, timed and counted as one operation (its halves
    /// are not in the read and update rows).
    ReadModifyWrite,
    /// A round trip of bytes sent back unchanged.
    Echo,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::ReadModifyWrite,
        OpKind::Echo,
    ];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::ReadModifyWrite => "rmw",
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

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn record_into(h: &mut Histogram<u64>, d: Duration) {
    let ns = nanos(d).max(1);
    // `record` grows the histogram; only a value past its range at full growth (centuries)
    // falls back to clamping.
    if h.record(ns).is_err() {
        h.saturating_record(ns);
    }
}

fn add_into(mine: &mut Histogram<u64>, theirs: &Histogram<u64>) {
    mine.add(theirs)
        .expect("auto-resizing histograms accept any other histogram");
}

/// One kind's record.
#[derive(Clone, Debug)]
struct KindTally {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    errors: u64,
    /// Reads that found nothing.
    misses: u64,
    /// Reads that returned more than one value (siblings).
    siblings: u64,
}

impl KindTally {
    fn new() -> Self {
        Self {
            latency: new_histogram(),
            service: new_histogram(),
            errors: 0,
            misses: 0,
            siblings: 0,
        }
    }

    fn merge(&mut self, o: &KindTally) {
        add_into(&mut self.latency, &o.latency);
        add_into(&mut self.service, &o.service);
        self.errors += o.errors;
        self.misses += o.misses;
        self.siblings += o.siblings;
    }
}

/// Latencies per operation kind, errors, misses and siblings, of one thread or a whole run.
#[derive(Clone, Debug)]
pub struct Tally {
    kinds: [KindTally; OpKind::ALL.len()],
    /// The earliest error: when (since the run started) and what.
    first_error: Option<(Duration, String)>,
    connections_lost: u64,
    /// Open loop: operations due in the measured window that never started (the window of
    /// in-flight operations stayed full to the end).
    missed: u64,
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
            kinds: std::array::from_fn(|_| KindTally::new()),
            first_error: None,
            connections_lost: 0,
            missed: 0,
        }
    }

    /// Records one successful operation: `latency` from when it was due, `service` from when
    /// it was sent.
    pub fn record(&mut self, kind: OpKind, latency: Duration, service: Duration) {
        let k = &mut self.kinds[kind.index()];
        record_into(&mut k.latency, latency);
        record_into(&mut k.service, service);
    }

    /// Records what a read found: `values` values (0: a miss, 2 or more: siblings).
    pub fn record_read_values(&mut self, kind: OpKind, values: usize) {
        let k = &mut self.kinds[kind.index()];
        match values {
            0 => k.misses += 1,
            1 => {}
            _ => k.siblings += 1,
        }
    }

    /// Records one failed operation, `at` after the run started.
    pub fn record_error(&mut self, kind: OpKind, at: Duration, message: &str) {
        self.kinds[kind.index()].errors += 1;
        if self.first_error.as_ref().is_none_or(|(t, _)| at < *t) {
            self.first_error = Some((at, message.to_owned()));
        }
    }

    /// Records that a connection broke and was not used again.
    pub fn record_connection_lost(&mut self) {
        self.connections_lost += 1;
    }

    /// Records `n` scheduled operations that never started.
    pub fn record_missed(&mut self, n: u64) {
        self.missed += n;
    }

    /// Scheduled operations that never started.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Adds `other` into `self` (commutative, associative).
    pub fn merge(&mut self, other: &Tally) {
        self.missed += other.missed;
        for (mine, theirs) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.merge(theirs);
        }
        self.connections_lost += other.connections_lost;
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

    /// Latencies (ns, from when due) of one kind.
    pub fn latency(&self, kind: OpKind) -> &Histogram<u64> {
        &self.kinds[kind.index()].latency
    }

    /// Service times (ns, from when sent) of one kind.
    pub fn service(&self, kind: OpKind) -> &Histogram<u64> {
        &self.kinds[kind.index()].service
    }

    /// Successful operations of one kind.
    pub fn ops(&self, kind: OpKind) -> u64 {
        self.latency(kind).len()
    }

    /// Failed operations of one kind.
    pub fn errors_of(&self, kind: OpKind) -> u64 {
        self.kinds[kind.index()].errors
    }

    /// Failed operations of every kind.
    pub fn errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum()
    }

    /// Reads of `kind` that found nothing.
    pub fn misses(&self, kind: OpKind) -> u64 {
        self.kinds[kind.index()].misses
    }

    /// Reads of every kind that returned siblings.
    pub fn sibling_reads(&self) -> u64 {
        self.kinds.iter().map(|k| k.siblings).sum()
    }

    /// The earliest error's message.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_ref().map(|(_, m)| m.as_str())
    }

    /// Connections that broke during the run.
    pub fn connections_lost(&self) -> u64 {
        self.connections_lost
    }
}

/// One row of a report: figures of one operation kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// `read`, `update`, `insert`, `rmw` or `echo`.
    pub op: String,
    /// Successful operations measured.
    pub ops: u64,
    /// Successful operations per second of measured time.
    pub ops_per_sec: f64,
    /// Failed operations.
    pub errors: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 95th percentile, µs.
    pub p95_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
}

impl Summary {
    fn of(op: &str, h: &Histogram<u64>, errors: u64, misses: u64, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        let empty = h.is_empty();
        let us = |ns: u64| ns as f64 / 1000.0;
        let pick = |q: f64| {
            if empty {
                0.0
            } else {
                us(h.value_at_quantile(q))
            }
        };
        Self {
            op: op.to_owned(),
            ops: h.len(),
            ops_per_sec: if secs > 0.0 {
                h.len() as f64 / secs
            } else {
                0.0
            },
            errors,
            misses,
            mean_us: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50_us: pick(0.5),
            p95_us: pick(0.95),
            p99_us: pick(0.99),
            p999_us: pick(0.999),
            max_us: if empty { 0.0 } else { us(h.max()) },
        }
    }
}

/// The outcome of one measured phase.
#[derive(Clone, Debug)]
pub struct Report {
    /// What ran, e.g. `workload A on redis`.
    pub title: String,
    /// Connections.
    pub connections: usize,
    /// Requests each connection kept in flight.
    pub pipeline: usize,
    /// The open-loop target rate, if any (ops/s over all connections).
    pub rate: Option<f64>,
    /// Measured time (warm-up excluded).
    pub elapsed: Duration,
    /// Everything measured.
    pub tally: Tally,
}

impl Report {
    /// One row per kind that completed or failed operations, then `total` when there are
    /// several kinds.
    pub fn summaries(&self) -> Vec<Summary> {
        let mut total = new_histogram();
        let (mut errors, mut misses) = (0, 0);
        let mut rows = Vec::new();
        for kind in OpKind::ALL {
            let h = self.tally.latency(kind);
            let (e, m) = (self.tally.errors_of(kind), self.tally.misses(kind));
            if h.is_empty() && e == 0 {
                continue;
            }
            rows.push(Summary::of(kind.name(), h, e, m, self.elapsed));
            add_into(&mut total, h);
            errors += e;
            misses += m;
        }
        if rows.len() != 1 {
            rows.push(Summary::of("total", &total, errors, misses, self.elapsed));
        }
        rows
    }

    /// The report for people: a header, a latency table (µs), then errors and siblings.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{}: {} connection{} x pipeline {}",
            self.title,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.pipeline,
        );
        if let Some(rate) = self.rate {
            let _ = write!(out, ", open loop at {rate:.0} ops/s");
        }
        let _ = writeln!(out, ", {:.2} s measured", self.elapsed.as_secs_f64());
        let _ = writeln!(
            out,
            "{:<7} {:>10} {:>11} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op",
            "ops",
            "ops/s",
            "errors",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "misses"
        );
        for r in self.summaries() {
            let _ = writeln!(
                out,
                "{:<7} {:>10} {:>11.0} {:>7} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9}",
                r.op,
                r.ops,
                r.ops_per_sec,
                r.errors,
                r.p50_us,
                r.p95_us,
                r.p99_us,
                r.p999_us,
                r.max_us,
                r.misses
            );
        }
        if self.rate.is_some() {
            out.push_str(
                "(latency from each operation's scheduled time; service times in the JSON)\n",
            );
        }
        let _ = write!(out, "reads with siblings: {}", self.tally.sibling_reads());
        if let Some(first) = self.tally.first_error() {
            let _ = write!(out, "; first error: {first}");
        }
        out.push('\n');
        if self.tally.connections_lost() > 0 {
            let _ = writeln!(out, "connections lost: {}", self.tally.connections_lost());
        }
        if self.tally.missed() > 0 {
            let _ = writeln!(
                out,
                "scheduled operations never started (the server fell behind the rate): {}",
                self.tally.missed()
            );
        }
        out
    }

    /// The figures of [`Report::to_text`] as a JSON value, with service times.
    pub fn to_json(&self) -> serde_json::Value {
        let service: Vec<Summary> = OpKind::ALL
            .iter()
            .filter(|k| !self.tally.service(**k).is_empty())
            .map(|&k| Summary::of(k.name(), self.tally.service(k), 0, 0, self.elapsed))
            .collect();
        serde_json::json!({
            "title": self.title,
            "connections": self.connections,
            "pipeline": self.pipeline,
            "rate": self.rate,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "results": self.summaries(),
            "service": service,
            "errors": self.tally.errors(),
            "first_error": self.tally.first_error(),
            "sibling_reads": self.tally.sibling_reads(),
            "connections_lost": self.tally.connections_lost(),
            "missed": self.tally.missed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn tally_of(kind: OpKind, latencies_us: &[u64]) -> Tally {
        let mut t = Tally::new();
        for &l in latencies_us {
            t.record(kind, us(l), us(l));
        }
        t
    }

    #[test]
    fn merge_is_order_independent_and_keeps_earliest_error() {
        let mut x = tally_of(OpKind::Read, &[1, 2]);
        x.record_error(OpKind::Read, us(300), "second");
        x.record_read_values(OpKind::Read, 0);
        let mut y = tally_of(OpKind::Update, &[3]);
        y.record_error(OpKind::Update, us(100), "first");
        y.record_read_values(OpKind::Read, 2);
        y.record_connection_lost();
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        for t in [&xy, &yx] {
            assert_eq!(t.errors(), 2);
            assert_eq!(t.first_error(), Some("first"));
            assert_eq!(t.ops(OpKind::Read), 2);
            assert_eq!(t.misses(OpKind::Read), 1);
            assert_eq!(t.sibling_reads(), 1);
            assert_eq!(t.connections_lost(), 1);
        }
        assert_eq!(xy.latency(OpKind::Read), yx.latency(OpKind::Read));
    }

    #[test]
    fn summaries_compute_rate_percentiles_and_total() {
        let mut t = tally_of(OpKind::Read, &(1..=1000).collect::<Vec<_>>());
        t.merge(&tally_of(OpKind::Update, &[5000; 1000]));
        let report = Report {
            title: "A".into(),
            connections: 2,
            pipeline: 1,
            rate: None,
            elapsed: Duration::from_secs(2),
            tally: t,
        };
        let rows = report.summaries();
        let names: Vec<_> = rows.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(names, ["read", "update", "total"]);
        let read = &rows[0];
        assert_eq!(read.ops, 1000);
        assert!((read.ops_per_sec - 500.0).abs() < 1e-9);
        assert!((read.p50_us - 500.0).abs() < 1.0, "{}", read.p50_us);
        assert!((read.p95_us - 950.0).abs() < 1.0, "{}", read.p95_us);
        assert!((read.max_us - 1000.0).abs() < 1.0);
        assert_eq!(rows[2].ops, 2000);
        let text = report.to_text();
        assert!(
            text.contains("\nread ") && text.contains("\ntotal "),
            "{text}"
        );
    }

    #[test]
    fn rmw_counts_once_in_the_total() {
        let mut t = tally_of(OpKind::Read, &[10, 10]);
        t.merge(&tally_of(OpKind::ReadModifyWrite, &[30]));
        let report = Report {
            title: "F".into(),
            connections: 1,
            pipeline: 1,
            rate: Some(100.0),
            elapsed: Duration::from_secs(1),
            tally: t,
        };
        let rows = report.summaries();
        assert_eq!(rows.last().map(|r| r.ops), Some(3));
        assert!(report.to_text().contains("open loop at 100 ops/s"));
    }

    #[test]
    fn empty_report_and_json_carry_the_figures() {
        let mut t = tally_of(OpKind::Echo, &[7, 8, 9]);
        t.record_error(OpKind::Echo, us(3), "server error: \"quoted\"");
        let report = Report {
            title: "echo".into(),
            connections: 3,
            pipeline: 2,
            rate: None,
            elapsed: Duration::from_millis(1500),
            tally: t,
        };
        let v = report.to_json();
        assert_eq!(v["connections"], 3);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["first_error"], "server error: \"quoted\"");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 1, "one kind: no total row");
        assert_eq!(results[0]["op"], "echo");
        assert_eq!(results[0]["ops_per_sec"], 2.0);
        let empty = Report {
            tally: Tally::new(),
            elapsed: Duration::ZERO,
            ..report
        };
        let rows = empty.summaries();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ops_per_sec, 0.0);
    }
}
