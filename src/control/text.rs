//! The text `rmount stats` prints without `--json`: a few aligned lines for
//! a person. Formatting only; the figures come from a `Snapshot`.

use std::fmt::Write;

use crate::stats::{CacheFigures, Snapshot};

/// `n` bytes in binary units, one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn hit_rate(c: &CacheFigures) -> String {
    match c.hits + c.misses {
        0 => "-".into(),
        all => format!("{:.1}%", 100.0 * c.hits as f64 / all as f64),
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, s);
    out
}

fn write_all(out: &mut String, s: &Snapshot) -> std::fmt::Result {
    writeln!(
        out,
        "{} {} {} on {} (pid {}, up {})",
        s.protocol,
        s.server,
        s.root,
        s.mountpoint,
        s.pid,
        duration(s.uptime_seconds)
    )?;
    let c = &s.connections;
    writeln!(
        out,
        "connections: {} open, {} busy, {} lost, {} reconnects",
        c.open, c.busy, c.lost, c.reconnects
    )?;
    writeln!(
        out,
        "transferred: {} read, {} written; uploads pending: {}; flushes: {}",
        bytes(s.bytes.read),
        bytes(s.bytes.written),
        s.uploads_pending,
        s.flushes
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "cache", "hits", "misses", "hit rate", "entries", "held"
    )?;
    for (name, f) in [
        ("attributes", &s.cache.attributes),
        ("listings", &s.cache.listings),
        ("blocks", &s.cache.blocks),
    ] {
        writeln!(
            out,
            "{name:<12} {:>10} {:>10} {:>8} {:>10} {:>10}",
            f.hits,
            f.misses,
            hit_rate(f),
            f.entries,
            bytes(f.bytes)
        )?;
    }
    writeln!(
        out,
        "{:<12} {:>10} {:>10} {:>10}",
        "operation", "count", "mean ms", "p99 ms"
    )?;
    for (name, op) in s.operations.iter().filter(|(_, op)| op.count > 0) {
        writeln!(
            out,
            "{name:<12} {:>10} {:>10.2} {:>10.2}",
            op.count, op.mean_ms, op.p99_ms
        )?;
    }
    let errors: Vec<String> = s.errors.iter().map(|(e, n)| format!("{e} {n}")).collect();
    match errors.is_empty() {
        true => writeln!(out, "errors: none"),
        false => writeln!(out, "errors: {}", errors.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(duration(3723.9), "1h02m03s");
    }

    #[test]
    fn only_operations_that_ran_are_listed() {
        let mut s = Snapshot::default();
        s.operations.insert("stat".into(), Default::default());
        s.operations.insert(
            "read".into(),
            crate::stats::OpFigures {
                count: 2,
                mean_ms: 1.5,
                p99_ms: 2.0,
            },
        );
        s.errors.insert("ENOENT".into(), 3);
        let text = render(&s);
        assert!(text.contains("read"), "{text}");
        assert!(!text.contains("stat "), "{text}");
        assert!(text.contains("errors: ENOENT 3"), "{text}");
    }
}
