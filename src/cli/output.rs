//! Printing: results on stdout, everything else on stderr; sats and times
//! in one format everywhere.

use std::io::{self, Write};

use l402_mcp::client::Msat;

use super::Failure;
use super::stderr::say_err;

/// Writes bytes to stdout. A closed pipe (`| head`) is not an error: the
/// reader has what it wanted.
pub fn stdout_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::general(
            "io",
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// Writes a line to stdout.
pub fn stdout_line(line: &str) -> Result<(), Failure> {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    stdout_bytes(text.as_bytes())
}

/// Writes one JSON value to stdout, on one line.
pub fn stdout_json(value: &serde_json::Value) -> Result<(), Failure> {
    stdout_line(&value.to_string())
}

/// A failure as JSON.
pub fn failure_json(f: &Failure) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": f.kind,
            "message": f.message,
            "exit_code": f.code,
        }
    })
}

/// Prints a failure: one `error:` sentence on stderr, and with `json` the
/// same as a JSON object on stdout.
pub fn print_failure(f: &Failure, json: bool) {
    say_err!("error: {}", f.message);
    if json {
        let _ = stdout_json(&failure_json(f));
    }
}

/// An amount: `21 sats`, `1.5 sats`.
pub fn sats(msat: u64) -> String {
    Msat(msat).to_string()
}

/// An amount without the unit: `21`, `1.5`.
pub fn sats_num(msat: u64) -> String {
    let s = Msat(msat).to_string();
    s.trim_end_matches(" sats").to_string()
}

/// `1 payment`, `2 payments`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A Unix time as `2026-05-01 12:00:00Z`.
pub fn utc(secs: u64) -> String {
    l402_mcp::text::utc_readable(secs)
}

/// A byte count: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(sats(21_000), "21 sats");
        assert_eq!(sats_num(1_500), "1.5");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(count(1, "payment"), "1 payment");
        assert_eq!(count(0, "payment"), "0 payments");
    }
}
