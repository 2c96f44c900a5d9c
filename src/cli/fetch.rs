//! `l402-mcp fetch` and `l402-mcp preview`: the client core on the command
//! line, with curl's flags and lnget's exit codes.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use l402_mcp::client::{
    Approval, ApprovalRequest, Approver, EXIT_NETWORK, EXIT_REFUSED, FetchRequest, L402Client,
    Preview, Receipt, TokenScheme, read_capped,
};

use super::output::{bytes, count, sats, sats_num, stdout_bytes, stdout_json, stdout_line};
use super::stderr::{say_err, say_err_part};
use super::{ClientFlags, Ctx, EXIT_ERROR, EXIT_OK, Failure, make_client};

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The URL to fetch (http or https).
    url: String,

    /// The method [default: GET, or POST with -d].
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,

    /// A request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,

    /// The request body, sent as given; @FILE reads a file, @- stdin. No
    /// Content-Type is added: pass one with -H.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,

    /// Write the body to FILE (streamed, any size; '-' is stdout) instead
    /// of printing it up to the body cap. FILE is written only when the
    /// answer is a success (2xx).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Pay at most this for this request; can only lower the configured cap
    /// (max_cost_sats).
    #[arg(long, value_name = "SATS")]
    max_cost: Option<u64>,

    /// Print one JSON object on stdout: status, url, content_type, body
    /// (text, or base64 for binary), truncated, receipt; or an error.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    client: ClientFlags,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The URL to preview.
    url: String,

    /// The method [default: GET]: GET, HEAD, OPTIONS or TRACE (a preview
    /// sends the request; a method that can change something is refused).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,

    /// Preview as if fetched with this per-request cap (can only lower it).
    #[arg(long, value_name = "SATS")]
    max_cost: Option<u64>,

    /// Print the preview as one JSON object.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    client: ClientFlags,
}

// -------------------------------------------------------------------------
// fetch

pub async fn run_fetch(args: FetchArgs, ctx: Ctx) -> Result<u8, Failure> {
    // Everything that can be wrong with the request is found before the
    // network or the store is touched.
    let settings = args.client.settings()?;
    let method = parse_method(args.method.as_deref(), args.data.is_some())?;
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json && args.output.as_deref() == Some(Path::new("-")) {
        return Err(Failure::general(
            "bad_request",
            "--json and -o - would both write to stdout; give -o a file",
        ));
    }
    let body = args.data.as_deref().map(read_data).transpose()?;
    let request = FetchRequest {
        url: args.url.clone(),
        method,
        headers,
        body,
        max_cost_msat: args.max_cost.map(|s| s.saturating_mul(1000)),
        call: Default::default(),
    };

    // The destination is opened before anything is fetched or paid: a
    // path that cannot be written must not cost anything.
    let sink = match &args.output {
        Some(path) if path != Path::new("-") => Some(FileSink::create(path)?),
        _ => None,
    };
    if let Some(asked) = args.max_cost {
        let cap = settings.max_cost_sats.value;
        if asked > cap && !ctx.quiet {
            say_err!(
                "note: --max-cost {asked} is above the configured per-request cap of {cap} sats; \
                 it can only lower the cap, so {cap} sats stays the limit"
            );
        }
    }

    let client = make_client(&settings, settings.client_config()).await?;
    recover(&client, ctx).await;

    let work = async {
        match &args.output {
            Some(path) => fetch_to(&client, request, path, sink, args.json, ctx).await,
            None => fetch_whole(&client, request, args.json, ctx).await,
        }
    };
    // Ctrl-C (or SIGTERM): the fetch stops (its partial file is removed
    // with it); a payment already under way completes and is recorded.
    tokio::select! {
        done = work => done,
        () = super::shutdown_signal() => {
            let drain = client.config().payment_timeout + Duration::from_secs(5);
            let settled = l402_mcp::client::wait_for_payments(drain).await;
            Err(Failure {
                kind: "interrupted",
                message: format!(
                    "interrupted: the fetch was stopped and nothing was written{}",
                    if settled {
                        "; any payment it had started was recorded"
                    } else {
                        "; a payment was still under way: the next run resolves it with the \
                         payment backend before paying anything again"
                    }
                ),
                code: EXIT_INTERRUPTED,
            })
        }
    }
}

/// Exit code of a fetch stopped by a signal (128 + SIGINT, as shells use).
const EXIT_INTERRUPTED: u8 = 130;

/// Fetches and prints the body on stdout, up to the body cap.
async fn fetch_whole(
    client: &L402Client,
    request: FetchRequest,
    json: bool,
    ctx: Ctx,
) -> Result<u8, Failure> {
    let resp = client.fetch(request).await?;
    let session = &client.config().session;
    if json {
        let (body, encoding) = body_for_json(&resp.body, resp.truncated);
        stdout_json(&json!({
            "status": resp.status,
            "url": resp.url.as_str(),
            "content_type": resp.content_type(),
            "body": body,
            "body_encoding": encoding,
            "truncated": resp.truncated,
            "receipt": resp.receipt.as_ref().map(|r| receipt_json(r, session)),
        }))?;
    } else {
        stdout_bytes(&resp.body)?;
        // On a terminal, end the body's last line so that the receipt does
        // not run on after it (a pipe gets the body byte for byte).
        if std::io::stdout().is_terminal() && !resp.body.is_empty() && !resp.body.ends_with(b"\n") {
            stdout_bytes(b"\n")?;
        }
    }
    if !ctx.quiet {
        if let Some(r) = &resp.receipt {
            say_err!("{}", receipt_line(r, resp.url.as_str(), session));
        }
        if let Some(problem) = resp.problem() {
            say_err!("note: {problem}");
        }
        if resp.truncated {
            say_err!(
                "note: the body was cut at {} (max_body_bytes); use -o FILE to save all of it",
                bytes(client.config().max_body_bytes as u64)
            );
        }
    }
    Ok(final_status(resp.url.as_str(), resp.status))
}

/// Fetches and streams the body to `path` ('-' is stdout), uncapped.
async fn fetch_to(
    client: &L402Client,
    request: FetchRequest,
    path: &Path,
    sink: Option<FileSink>,
    json: bool,
    ctx: Ctx,
) -> Result<u8, Failure> {
    let raw = client.fetch_raw(request).await?;
    let session = client.config().session.clone();
    let url = raw.url.to_string();
    let status = raw.response.status().as_u16();
    let content_type = raw
        .response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // The receipt first: money moved (or a token was used) whatever
    // becomes of the download.
    if !ctx.quiet
        && let Some(r) = &raw.receipt
    {
        say_err!("{}", receipt_line(r, &url, &session));
    }
    let receipt = raw.receipt.as_ref().map(|r| receipt_json(r, &session));

    // Not a success: the file is left alone; the body is printed, capped.
    if !(200..300).contains(&status) {
        let (body, truncated) = read_capped(raw.response, client.config().max_body_bytes).await?;
        if json {
            let (text, encoding) = body_for_json(&body, truncated);
            stdout_json(&json!({
                "status": status, "url": url, "content_type": content_type,
                "body": text, "body_encoding": encoding, "truncated": truncated,
                "output": null, "receipt": receipt,
            }))?;
        } else {
            stdout_bytes(&body)?;
        }
        return Ok(final_status(&url, status));
    }

    let total = raw.response.content_length();
    let mut progress = Progress::new(total, !ctx.quiet && std::io::stderr().is_terminal());
    let written = match sink {
        None => {
            let mut sink = StdoutSink;
            stream(raw.response, &mut sink, &mut progress, &url).await?
        }
        Some(mut sink) => {
            // On an error the sink is dropped, and its partial file with it.
            let n = stream(raw.response, &mut sink, &mut progress, &url).await?;
            sink.persist()?;
            n
        }
    };
    progress.finish();
    if json {
        stdout_json(&json!({
            "status": status, "url": url, "content_type": content_type,
            "body": null, "body_encoding": null, "truncated": false,
            "output": path.display().to_string(), "bytes": written, "receipt": receipt,
        }))?;
    } else if !ctx.quiet && path != Path::new("-") {
        say_err!("saved {} to {}", bytes(written), path.display());
    }
    Ok(EXIT_OK)
}

/// 2xx is success; anything else is exit 1, said on stderr.
fn final_status(url: &str, status: u16) -> u8 {
    if (200..300).contains(&status) {
        return EXIT_OK;
    }
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    say_err!("error: {url} answered {status} {reason}");
    EXIT_ERROR
}

trait Sink {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

struct StdoutSink;

impl Sink for StdoutSink {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        std::io::stdout().lock().write_all(chunk)
    }
}

/// A file written under a temporary name beside its target and renamed
/// into place once complete: a broken download never leaves a half file
/// under the name asked for, and an unfinished one (an error, Ctrl-C) is
/// removed when the sink is dropped. A target that is not a file (a device
/// such as `/dev/null`, a FIFO) is written in place, as curl does: renaming
/// over it would replace the device with a file. A symbolic link is
/// written through: its target is replaced, the link kept.
struct FileSink {
    /// `None`: written in place.
    tmp: Option<PathBuf>,
    target: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl FileSink {
    /// Opens the temporary file beside `target`: proves the directory is
    /// writable before anything is fetched. Errors name `target`.
    fn create(target: &Path) -> Result<Self, Failure> {
        let refuse = |why: String| {
            Failure::general(
                "io",
                format!(
                    "cannot write to {}: {why}; nothing was fetched or paid",
                    target.display()
                ),
            )
        };
        if target.is_dir() {
            return Err(refuse("it is a directory".into()));
        }
        let name = target
            .file_name()
            .ok_or_else(|| refuse("it is not a file name".into()))?
            .to_string_lossy()
            .into_owned();
        // What the name leads to, links followed.
        let existing = std::fs::metadata(target).ok();
        if let Some(meta) = &existing
            && !meta.is_file()
        {
            // A device or a FIFO: written in place, never replaced.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| refuse(e.to_string()))?;
            return Ok(FileSink {
                tmp: None,
                target: target.to_path_buf(),
                file: Some(std::io::BufWriter::new(file)),
            });
        }
        if existing
            .as_ref()
            .is_some_and(|m| m.permissions().readonly())
        {
            return Err(refuse("it exists and is read-only".into()));
        }
        // Through a link to the file it names, so the link stays.
        let target = match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() && existing.is_some() => {
                std::fs::canonicalize(target).map_err(|e| refuse(e.to_string()))?
            }
            _ => target.to_path_buf(),
        };
        let tmp = target.with_file_name(format!(".{name}.{}.part", std::process::id()));
        // A fresh file: never follow whatever already has that name.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| refuse(e.to_string()))?;
        Ok(FileSink {
            tmp: Some(tmp),
            target,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    fn persist(mut self) -> Result<(), Failure> {
        use std::io::Write;
        let io = |e: std::io::Error| {
            Failure::general("io", format!("cannot write {}: {e}", self.target.display()))
        };
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        file.flush().map_err(io)?;
        let Some(tmp) = &self.tmp else {
            // In place (a device, a FIFO): nothing to sync or rename.
            return Ok(());
        };
        file.get_ref().sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(tmp, &self.target).map_err(io)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Not persisted (or persisting failed before the rename): remove
        // the temporary file. After a rename there is nothing there.
        self.file.take();
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match &mut self.file {
            Some(f) => f.write_all(chunk),
            None => Err(std::io::Error::other("the file is already closed")),
        }
    }
}

async fn stream(
    mut response: reqwest::Response,
    sink: &mut dyn Sink,
    progress: &mut Progress,
    url: &str,
) -> Result<u64, Failure> {
    let mut written = 0u64;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(written),
            Err(e) => {
                progress.finish();
                return Err(Failure {
                    kind: "network",
                    message: format!(
                        "network error: the download of {url} broke off after {}: {e}",
                        bytes(written)
                    ),
                    code: EXIT_NETWORK,
                });
            }
        };
        sink.write(&chunk).map_err(|e| {
            progress.finish();
            Failure::general("io", format!("cannot write the body of {url}: {e}"))
        })?;
        written += chunk.len() as u64;
        progress.tick(written);
    }
}

/// A one-line progress bar on stderr, drawn only on a terminal and only
/// once a download has taken a moment.
struct Progress {
    enabled: bool,
    total: Option<u64>,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// Downloads quicker than this never show a bar.
    const DELAY: Duration = Duration::from_millis(300);
    /// Redraws at most this often.
    const EVERY: Duration = Duration::from_millis(100);

    fn new(total: Option<u64>, enabled: bool) -> Self {
        Progress {
            enabled,
            total,
            start: Instant::now(),
            last: None,
        }
    }

    fn tick(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.start);
        if elapsed < Self::DELAY
            || self
                .last
                .is_some_and(|l| now.duration_since(l) < Self::EVERY)
        {
            return;
        }
        self.last = Some(now);
        let rate = (done as f64 / elapsed.as_secs_f64()) as u64;
        let line = match self.total {
            Some(total) if total > 0 => {
                let pct = (done.min(total) * 100 / total) as usize;
                let filled = pct * 30 / 100;
                format!(
                    "[{}{}] {pct:>3}% {} / {}  {}/s",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    bytes(done),
                    bytes(total),
                    bytes(rate)
                )
            }
            _ => format!("{}  {}/s", bytes(done), bytes(rate)),
        };
        say_err_part!("\r\x1b[2K{line}");
    }

    fn finish(&mut self) {
        if self.last.take().is_some() {
            say_err_part!("\r\x1b[2K");
        }
    }
}

// -------------------------------------------------------------------------
// preview

pub async fn run_preview(args: PreviewArgs, ctx: Ctx) -> Result<u8, Failure> {
    let settings = args.client.settings()?;
    let method = parse_method(args.method.as_deref(), false)?;
    let mut config = settings.client_config();
    if let Some(cap) = args.max_cost {
        config.max_cost_msat = config.max_cost_msat.min(cap.saturating_mul(1000));
    }
    // A preview pays nothing, so it runs without a payer too, and says
    // what a payment would need.
    let client = if settings.payer().is_some() {
        make_client(&settings, config).await?
    } else {
        if !ctx.quiet {
            say_err!("note: {}", settings.no_payer_message());
        }
        L402Client::without_payer(config, super::open_store(&settings)?)?
    };
    recover(&client, ctx).await;
    let preview = client.preview(&args.url, method).await?;
    let refused = preview.payment_required && !preview.would_pay;
    if args.json {
        let value = serde_json::to_value(&preview).map_err(|e| {
            Failure::general("json", format!("cannot write the preview as JSON: {e}"))
        })?;
        stdout_json(&value)?;
    } else {
        print_preview(&preview)?;
    }
    Ok(if refused { EXIT_REFUSED } else { EXIT_OK })
}

fn print_preview(p: &Preview) -> Result<(), Failure> {
    let reason = reqwest::StatusCode::from_u16(p.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if !p.payment_required {
        stdout_line(&format!(
            "{}: {} {reason}; no payment asked",
            p.url, p.status
        ))?;
    } else {
        let price = p
            .price_msat
            .map_or_else(|| "an unreadable price".to_string(), sats);
        let description = p
            .description
            .as_deref()
            .map(|d| format!(" ({d:?})"))
            .unwrap_or_default();
        stdout_line(&format!(
            "{}: {} {reason}; asks {price}{description}",
            p.url, p.status
        ))?;
        for c in &p.checks {
            let verdict = if c.ok { "ok" } else { "FAIL" };
            stdout_line(&format!("  {verdict:<5} {:<13} {}", c.name, c.detail))?;
        }
        stdout_line(&format!(
            "would pay: {}",
            if p.would_pay { "yes" } else { "no" }
        ))?;
        if let Some(scheme) = p.scheme {
            stdout_line(&format!(
                "scheme: {scheme} (preferred when a 402 offers both: {})",
                p.prefer_scheme
            ))?;
        }
    }
    if p.cached_token {
        stdout_line(
            "a token for this origin is cached: a fetch presents it first, and pays only if it is refused",
        )?;
    }
    let b = &p.budget;
    stdout_line(&format!(
        "session {}: {} left of {} ({} spent, {} reserved, {})",
        b.session,
        sats(b.left_msat),
        sats(b.budget_msat),
        sats(b.spent_msat),
        sats(b.reserved_msat),
        count(b.payments, "payment")
    ))
}

// -------------------------------------------------------------------------
// shared

/// Resolves payments an earlier run left pending, before anything else,
/// so that the numbers and the tokens are right. Not fatal: the client
/// resolves them again before paying any of their invoices.
pub async fn recover(client: &L402Client, ctx: Ctx) {
    match client.recover().await {
        Ok(r) => {
            if !ctx.quiet && (r.succeeded > 0 || r.released > 0) {
                say_err!(
                    "note: resolved payments left pending by an earlier run: {} succeeded, {} released",
                    r.succeeded,
                    r.released
                );
            }
            if !ctx.quiet && r.still_pending > 0 {
                say_err!(
                    "note: {} from earlier runs still unresolved; their budget stays held",
                    count(r.still_pending as u64, "payment")
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot resolve pending payments now"),
    }
}

fn receipt_line(r: &Receipt, url: &str, session: &str) -> String {
    let line = receipt_words(r, url, session);
    match &r.note {
        Some(note) => format!("{line}; note: {note}"),
        None => line,
    }
}

fn receipt_words(r: &Receipt, url: &str, session: &str) -> String {
    if r.paid {
        let scheme = match (r.scheme, &r.payment_receipt) {
            (TokenScheme::L402, _) => String::new(),
            (TokenScheme::Payment, None) => " with a Payment credential".into(),
            (TokenScheme::Payment, Some(p)) => format!(
                " with a Payment credential (receipt: {} at {})",
                p.status, p.timestamp
            ),
        };
        format!(
            "paid {} (+{} fee) for {url}{scheme}; {} left in session {session}",
            sats(r.amount_msat),
            sats_num(r.fee_msat),
            sats(r.budget_left_msat)
        )
    } else {
        format!(
            "reused a token bought earlier for {url} (no payment); {} left in session {session}",
            sats(r.budget_left_msat)
        )
    }
}

fn receipt_json(r: &Receipt, session: &str) -> Value {
    json!({
        "paid": r.paid,
        "amount_msat": r.amount_msat,
        "fee_msat": r.fee_msat,
        "payment_hash": r.payment_hash.to_hex(),
        "budget_left_msat": r.budget_left_msat,
        "session": session,
        "note": r.note,
        "scheme": r.scheme,
        "payment_receipt": r.payment_receipt,
    })
}

/// The body as JSON text, or base64 when it is not UTF-8. A body cut by
/// the cap may end inside a character: that tail is dropped, not counted
/// as binary.
fn body_for_json(body: &Bytes, truncated: bool) -> (String, &'static str) {
    match std::str::from_utf8(body) {
        Ok(s) => (s.to_string(), "utf-8"),
        Err(e) if truncated && e.error_len().is_none() => (
            String::from_utf8_lossy(&body[..e.valid_up_to()]).into_owned(),
            "utf-8",
        ),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    }
}

fn parse_method(method: Option<&str>, has_body: bool) -> Result<Method, Failure> {
    match method {
        Some(m) => Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| Failure::general("bad_request", format!("{m:?} is not an HTTP method"))),
        None if has_body => Ok(Method::POST),
        None => Ok(Method::GET),
    }
}

fn parse_header(h: &str) -> Result<(String, String), Failure> {
    match h.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(Failure::general(
            "bad_request",
            format!("the header {h:?} is not in the form 'Name: value'"),
        )),
    }
}

/// `-d` data: as given, `@FILE` read from a file, `@-` from stdin.
fn read_data(data: &str) -> Result<Bytes, Failure> {
    match data.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                Failure::general("io", format!("cannot read the body from stdin: {e}"))
            })?;
            Ok(Bytes::from(buf))
        }
        Some(path) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| Failure::general("io", format!("cannot read the body from {path}: {e}"))),
        None => Ok(Bytes::copy_from_slice(data.as_bytes())),
    }
}

/// Asks on the terminal before a payment above the approval threshold.
#[derive(Debug)]
pub struct TerminalApprover;

impl TerminalApprover {
    /// An approver when a person is at the terminal (stdin and stderr).
    pub fn if_interactive() -> Option<Self> {
        (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
            .then_some(TerminalApprover)
    }
}

#[async_trait]
impl Approver for TerminalApprover {
    async fn approve(&self, r: &ApprovalRequest) -> Approval {
        let description = r
            .description
            .as_deref()
            .map(|d| format!(" ({d:?})"))
            .unwrap_or_default();
        let prompt = format!(
            "{} asks {}{description} plus up to {} in fees; {} left in this session. Pay? [y/N] ",
            r.url,
            sats(r.amount_msat),
            sats(r.fee_limit_msat),
            sats(r.budget_left_msat)
        );
        let answer = tokio::task::spawn_blocking(move || {
            say_err_part!("{prompt}");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        match answer {
            Ok(Ok(line)) if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") => {
                Approval::Approved
            }
            Ok(Ok(_)) => Approval::Declined("declined at the terminal".into()),
            _ => Approval::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_like_request_flags() {
        assert_eq!(parse_method(None, false).unwrap(), Method::GET);
        assert_eq!(parse_method(None, true).unwrap(), Method::POST);
        assert_eq!(parse_method(Some("put"), true).unwrap(), Method::PUT);
        assert!(parse_method(Some("BAD METHOD"), false).is_err());
        assert_eq!(
            parse_header("Content-Type: application/json").unwrap(),
            ("Content-Type".into(), "application/json".into())
        );
        assert_eq!(
            parse_header("X-Empty:").unwrap(),
            ("X-Empty".into(), String::new())
        );
        assert!(parse_header("no colon").is_err());
        assert_eq!(read_data("a=b").unwrap(), Bytes::from_static(b"a=b"));
    }

    #[test]
    fn json_bodies_are_text_or_base64() {
        assert_eq!(
            body_for_json(&Bytes::from_static(b"hi"), false),
            ("hi".into(), "utf-8")
        );
        assert_eq!(
            body_for_json(&Bytes::from_static(&[0xff, 0x00]), false),
            ("/wA=".into(), "base64")
        );
        // "é" is two bytes; a cap after the first keeps the text.
        assert_eq!(
            body_for_json(&Bytes::from_static(b"ab\xc3"), true),
            ("ab".into(), "utf-8")
        );
    }

    #[test]
    fn receipt_lines() {
        let r = Receipt {
            paid: true,
            amount_msat: 21_000,
            fee_msat: 0,
            payment_hash: l402_mcp::lightning::PaymentHash([1; 32]),
            budget_left_msat: 4_979_000,
            note: None,
            scheme: l402_mcp::store::TokenScheme::L402,
            payment_receipt: None,
        };
        assert_eq!(
            receipt_line(&r, "http://h/v1/demo", "default"),
            "paid 21 sats (+0 fee) for http://h/v1/demo; 4979 sats left in session default"
        );
        let noted = Receipt {
            note: Some("the wallet charged more".into()),
            ..r
        };
        assert_eq!(
            receipt_line(&noted, "http://h/v1/demo", "default"),
            "paid 21 sats (+0 fee) for http://h/v1/demo; 4979 sats left in session default; \
             note: the wallet charged more"
        );
    }
}
