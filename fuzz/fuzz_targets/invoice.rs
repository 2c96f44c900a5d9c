//! Invoices come from any server's 402: decoding must never panic, and the
//! questions the client asks of an invoice (amount, expiry, network, hash)
//! must never panic either.
#![no_main]

use l402_mcp::lightning::Invoice;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(invoice) = text.parse::<Invoice>() else { return };
    let _ = invoice.amount_msat();
    let _ = invoice.payment_hash();
    let _ = invoice.network();
    let _ = invoice.is_expired_at(std::time::SystemTime::now());
    let _ = invoice.expires_at_unix();
    let _ = invoice.description();
});
