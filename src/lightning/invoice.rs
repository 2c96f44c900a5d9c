//! A decoded, signature-checked BOLT11 invoice.
//!
//! Decoding is `lightning-invoice`'s (rust-lightning): bech32, field
//! parsing and the signature check. This type only adds the questions the
//! rest of the crate asks of an invoice, with amounts in millisatoshis.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef, SignedRawBolt11Invoice};

use super::{Network, PaymentHash};

/// Longest BOLT11 string we try to decode. Real invoices are a few hundred
/// characters; 7089 is the bech32 limit lightning-invoice itself allows.
pub const MAX_INVOICE_LEN: usize = 7089;

/// Why an invoice was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    /// Longer than any real invoice.
    #[error("invoice is {0} characters long; the limit is {MAX_INVOICE_LEN}")]
    TooLong(usize),
    /// An expiry so far in the future that no clock can hold it.
    #[error("invoice expiry of {0} seconds is out of range")]
    ExpiryOutOfRange(u64),
    /// Not a BOLT11 invoice, or a bad signature.
    #[error("invoice is not a valid BOLT11 invoice: {0}")]
    Malformed(String),
}

/// A BOLT11 invoice whose encoding and signature have been checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Invoice {
    inner: Bolt11Invoice,
    text: String,
}

impl Invoice {
    /// Wraps an invoice built with `lightning-invoice`.
    pub fn from_bolt11(inner: Bolt11Invoice) -> Self {
        let text = inner.to_string();
        Invoice { inner, text }
    }

    /// The amount asked, in millisatoshis; `None` for an amountless invoice.
    pub fn amount_msat(&self) -> Option<u64> {
        self.inner.amount_milli_satoshis()
    }

    /// The payment hash the payee committed to.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(*AsRef::<[u8; 32]>::as_ref(self.inner.payment_hash()))
    }

    /// The network the invoice is for.
    pub fn network(&self) -> Network {
        self.inner.currency().into()
    }

    /// When the invoice was created.
    pub fn created_at(&self) -> SystemTime {
        self.inner.timestamp()
    }

    /// How long after creation the invoice can be paid.
    pub fn expiry(&self) -> Duration {
        self.inner.expiry_time()
    }

    /// When the invoice stops being payable. (Parsing refused invoices
    /// whose expiry overflows the clock, so this cannot overflow.)
    pub fn expires_at(&self) -> SystemTime {
        self.created_at()
            .checked_add(self.expiry())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// True when the invoice is past its expiry at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.expires_at()
    }

    /// Unix seconds at which the invoice expires.
    pub fn expires_at_unix(&self) -> u64 {
        self.expires_at()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// The description, if it is a plain one (not a hash).
    pub fn description(&self) -> Option<String> {
        match self.inner.description() {
            Bolt11InvoiceDescriptionRef::Direct(d) => Some(d.to_string()),
            Bolt11InvoiceDescriptionRef::Hash(_) => None,
        }
    }

    /// The payee's node id, hex.
    pub fn payee_hex(&self) -> String {
        hex::encode(self.inner.get_payee_pub_key().serialize())
    }

    /// The underlying `lightning-invoice` value.
    pub fn as_bolt11(&self) -> &Bolt11Invoice {
        &self.inner
    }

    /// The invoice as text, exactly as received.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Invoice {
    type Err = InvoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_INVOICE_LEN {
            return Err(InvoiceError::TooLong(s.len()));
        }
        // Accept a `lightning:` URI prefix, as wallets print it.
        let s = s
            .strip_prefix("lightning:")
            .or_else(|| s.strip_prefix("LIGHTNING:"))
            .unwrap_or(s);
        let raw = SignedRawBolt11Invoice::from_str(s)
            .map_err(|e| InvoiceError::Malformed(e.to_string()))?;
        let inner =
            Bolt11Invoice::from_signed(raw).map_err(|e| InvoiceError::Malformed(e.to_string()))?;
        // A hostile invoice may carry an expiry near u64::MAX seconds;
        // refuse it here so that no later time arithmetic can overflow.
        if inner.timestamp().checked_add(inner.expiry_time()).is_none() {
            return Err(InvoiceError::ExpiryOutOfRange(
                inner.expiry_time().as_secs(),
            ));
        }
        Ok(Invoice {
            inner,
            text: s.to_string(),
        })
    }
}

impl fmt::Display for Invoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Invoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoice")
            .field("network", &self.network())
            .field("amount_msat", &self.amount_msat())
            .field("payment_hash", &self.payment_hash())
            .field("expires_at_unix", &self.expires_at_unix())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::{Hash, sha256};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};

    fn invoice_with_expiry(expiry: Duration) -> String {
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&[7; 32]).unwrap();
        InvoiceBuilder::new(Currency::Regtest)
            .description("x".into())
            .payment_hash(sha256::Hash::from_slice(&[1; 32]).unwrap())
            .payment_secret(PaymentSecret([2; 32]))
            .current_timestamp()
            .min_final_cltv_expiry_delta(18)
            .amount_milli_satoshis(1000)
            .expiry_time(expiry)
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
            .unwrap()
            .to_string()
    }

    #[test]
    fn hostile_expiry_is_refused_not_a_panic() {
        let text = invoice_with_expiry(Duration::from_secs(u64::MAX / 2));
        let r = text.parse::<Invoice>();
        assert!(matches!(r, Err(InvoiceError::ExpiryOutOfRange(_))), "{r:?}");
    }

    #[test]
    fn ordinary_invoice_round_trips() {
        let text = invoice_with_expiry(Duration::from_secs(600));
        let inv: Invoice = text.parse().unwrap();
        assert_eq!(inv.to_string(), text);
        assert_eq!(inv.amount_msat(), Some(1000));
        assert_eq!(inv.expiry(), Duration::from_secs(600));
        assert!(!inv.is_expired_at(SystemTime::now()));
        assert_eq!(inv.network(), Network::Regtest);
    }
}
