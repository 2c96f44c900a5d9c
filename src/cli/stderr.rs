//! Writing to stderr without ever taking the process down.
//!
//! `eprintln!` panics when stderr is gone (`l402-mcp gateway 2>&1 | head -1`:
//! once `head` exits, every write is `EPIPE`; Rust ignores SIGPIPE, so the
//! write returns the error and the macro panics), and tracing-subscriber
//! reports a failed write with `eprintln!` too. A server must outlive its
//! log reader: these writers drop what cannot be written.

use std::io::{self, Write};

/// A `tracing_subscriber` writer: stderr, where a failed write (a closed
/// pipe, a full disk) is dropped silently instead of reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LossyStderr
    }
}

/// `eprintln!` that ignores a closed or failing stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say_err;

/// `eprint!` (no newline) that ignores a closed or failing stderr.
macro_rules! say_err_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut e = std::io::stderr();
        let _ = write!(e, $($arg)*);
        let _ = e.flush();
    }};
}
pub(crate) use say_err_part;
