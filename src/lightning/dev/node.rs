//! The dev node: signs regtest invoices and settles each at most once.
//!
//! The node keeps, per invoice it issued, the preimage, the amount and when
//! the invoice stops being payable. Settling is one state change under one
//! lock, so an invoice pays out exactly once however many requests race for
//! it. Memory is bounded: unpaid invoices are capped at
//! [`MAX_UNPAID_INVOICES`] (expired ones are dropped first), settled ones at
//! [`MAX_SETTLED_INVOICES`] (the oldest settlement is forgotten first).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{self, All, PublicKey, Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use rand::RngCore;

use crate::lightning::{
    Invoice, IssuedInvoice, Network, Payment, PaymentHash, PaymentStatus, Preimage,
};
use crate::lightning::{Invoicer, InvoicerError};

/// How long a dev invoice can be paid when the caller has no opinion: ten
/// minutes, long enough for an agent to decide and pay, short enough that
/// abandoned challenges leave memory soon. LND's default is one hour; a
/// gateway's challenge is answered within seconds or not at all.
pub const DEFAULT_INVOICE_EXPIRY: Duration = Duration::from_secs(600);

/// The longest expiry the dev node signs: 30 days. Invoices live in memory
/// until they expire, and a BOLT11 expiry near `u64::MAX` seconds overflows
/// the clock arithmetic of every reader.
pub const MAX_INVOICE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Most unpaid invoices the node holds at once. Each holds ~150 bytes, so
/// 100 000 is ~15 MB: a flood of 402 challenges is refused with
/// [`InvoicerError::Backend`] beyond it rather than exhausting memory.
pub const MAX_UNPAID_INVOICES: usize = 100_000;

/// Most settled invoices the node remembers. A settlement is kept so that
/// paying again answers "already paid" and a payer can look it up; beyond
/// this the oldest settlement is forgotten (the dev network holds no real
/// money, so forgetting one costs nothing but that lookup).
pub const MAX_SETTLED_INVOICES: usize = 100_000;

/// How long an expired, unpaid invoice is still remembered (so that paying
/// it answers "expired" rather than "not issued here"), unless the unpaid
/// cap forces it out sooner.
pub const EXPIRED_INVOICE_RETENTION: Duration = Duration::from_secs(3600);

/// `min_final_cltv_expiry_delta` written into dev invoices: BOLT11's
/// default (18 blocks). The dev network has no blocks; real payers that
/// decode the invoice expect a sane value.
pub const DEV_MIN_FINAL_CLTV_EXPIRY_DELTA: u64 = 18;

/// All the bitcoin there will ever be, in millisatoshis.
const MAX_MONEY_MSAT: u64 = 21_000_000 * 100_000_000 * 1_000;

/// Why the dev node would not settle an invoice. Each maps to the HTTP
/// status `POST /dev/pay` answers with ([`SettleError::status_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// Not a BOLT11 invoice, or its signature does not check out.
    #[error("The invoice is malformed: {0}.")]
    Malformed(String),
    /// The invoice is valid but this node did not issue it (or has
    /// forgotten it).
    #[error("Invoice {payment_hash} was not issued by this dev node.")]
    NotIssuedHere {
        /// The invoice's payment hash.
        payment_hash: PaymentHash,
    },
    /// The invoice was settled before; it settles only once.
    #[error("Invoice {payment_hash} is already paid.")]
    AlreadyPaid {
        /// The invoice's payment hash.
        payment_hash: PaymentHash,
    },
    /// The invoice expired unpaid.
    #[error(
        "Invoice {payment_hash} expired at unix time {expired_at_unix} and can no longer be paid."
    )]
    Expired {
        /// The invoice's payment hash.
        payment_hash: PaymentHash,
        /// When it expired, in Unix seconds.
        expired_at_unix: u64,
    },
}

impl SettleError {
    /// The HTTP status `POST /dev/pay` answers with: 400, 404, 409 or 410.
    pub fn status_code(&self) -> u16 {
        match self {
            SettleError::Malformed(_) => 400,
            SettleError::NotIssuedHere { .. } => 404,
            SettleError::AlreadyPaid { .. } => 409,
            SettleError::Expired { .. } => 410,
        }
    }
}

/// The key given to [`DevNode::from_secret_key`] is not a valid secp256k1
/// secret key (zero, or not below the curve order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The dev node key is not a valid secp256k1 secret key.")]
pub struct InvalidNodeKey;

/// What the dev node knows of an invoice, looked up by payment hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevInvoiceStatus {
    /// Paid; the preimage is revealed.
    Settled(Payment),
    /// Issued here and not paid (possibly expired).
    Unpaid {
        /// True when the invoice can no longer be paid.
        expired: bool,
    },
    /// Not issued here, or forgotten.
    NotIssued,
}

impl From<DevInvoiceStatus> for PaymentStatus {
    /// What a payer learns: settled is success; anything else means no
    /// payment to this hash happened.
    fn from(s: DevInvoiceStatus) -> Self {
        match s {
            DevInvoiceStatus::Settled(p) => PaymentStatus::Succeeded(p),
            DevInvoiceStatus::Unpaid { .. } | DevInvoiceStatus::NotIssued => PaymentStatus::Unknown,
        }
    }
}

/// One invoice the node issued.
struct Entry {
    preimage: Preimage,
    amount_msat: u64,
    expires_at: SystemTime,
    settled: bool,
}

/// The node's books, all under one lock.
struct Book {
    invoices: HashMap<PaymentHash, Entry>,
    /// Unpaid invoices by expiry, so expired ones are found without a scan.
    unpaid_by_expiry: BTreeSet<(SystemTime, PaymentHash)>,
    /// Settled invoices in settlement order, oldest first.
    settled_order: VecDeque<PaymentHash>,
    /// Settlements ever made (never decreases).
    settlements: u64,
    max_unpaid: usize,
    max_settled: usize,
}

impl Book {
    fn new(max_unpaid: usize, max_settled: usize) -> Self {
        Book {
            invoices: HashMap::new(),
            unpaid_by_expiry: BTreeSet::new(),
            settled_order: VecDeque::new(),
            settlements: 0,
            max_unpaid,
            max_settled,
        }
    }

    /// Drops unpaid invoices that expired at or before `cutoff`.
    fn drop_unpaid_expired_by(&mut self, cutoff: SystemTime) {
        while let Some(&(expires_at, hash)) = self.unpaid_by_expiry.first() {
            if expires_at > cutoff {
                break;
            }
            self.unpaid_by_expiry.pop_first();
            self.invoices.remove(&hash);
        }
    }

    /// Records a new unpaid invoice, making room first; refuses when the
    /// unpaid cap is reached by invoices that are all still payable.
    fn insert(&mut self, now: SystemTime, hash: PaymentHash, entry: Entry) -> Result<(), usize> {
        // Long-expired invoices go on every insert; recently expired ones
        // only when room is needed.
        self.drop_unpaid_expired_by(
            now.checked_sub(EXPIRED_INVOICE_RETENTION)
                .unwrap_or(UNIX_EPOCH),
        );
        if self.unpaid_by_expiry.len() >= self.max_unpaid {
            self.drop_unpaid_expired_by(now);
        }
        if self.unpaid_by_expiry.len() >= self.max_unpaid {
            return Err(self.max_unpaid);
        }
        self.unpaid_by_expiry.insert((entry.expires_at, hash));
        self.invoices.insert(hash, entry);
        Ok(())
    }

    fn unpaid_count(&self) -> usize {
        self.unpaid_by_expiry.len()
    }
}

/// The embedded dev Lightning node: an [`Invoicer`] on regtest that signs
/// real BOLT11 invoices with its own key and settles them through
/// [`DevNode::settle`] (served over HTTP by [`super::router`]).
///
/// It is a stand-in for the Lightning network and gives everything away:
/// anyone who can reach it can settle its invoices for free. Never let a
/// gateway that sells anything real use it.
pub struct DevNode {
    secp: Secp256k1<All>,
    secret_key: SecretKey,
    node_id: PublicKey,
    book: Mutex<Book>,
}

impl DevNode {
    /// A node with a fresh random key.
    pub fn new() -> Self {
        let mut rng = rand::rngs::OsRng;
        loop {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            // Fails only for zero or a value >= the curve order
            // (probability ~2^-128); draw again.
            if let Ok(node) = Self::from_secret_key(bytes) {
                return node;
            }
        }
    }

    /// A node with the given key (tests, or a stable demo identity).
    pub fn from_secret_key(secret_key: [u8; 32]) -> Result<Self, InvalidNodeKey> {
        Self::with_limits(secret_key, MAX_UNPAID_INVOICES, MAX_SETTLED_INVOICES)
    }

    fn with_limits(
        secret_key: [u8; 32],
        max_unpaid: usize,
        max_settled: usize,
    ) -> Result<Self, InvalidNodeKey> {
        let secret_key = SecretKey::from_slice(&secret_key).map_err(|_| InvalidNodeKey)?;
        let secp = Secp256k1::new();
        let node_id = PublicKey::from_secret_key(&secp, &secret_key);
        Ok(DevNode {
            secp,
            secret_key,
            node_id,
            book: Mutex::new(Book::new(max_unpaid, max_settled)),
        })
    }

    /// The node's public key, 33-byte compressed, as hex: the payee of every
    /// invoice it signs.
    pub fn node_id(&self) -> String {
        hex::encode(self.node_id.serialize())
    }

    /// How many invoices this node has ever settled.
    pub fn settlements(&self) -> u64 {
        self.book().settlements
    }

    /// How many unpaid invoices the node holds now (expired ones included
    /// until they are dropped).
    pub fn unpaid_count(&self) -> usize {
        self.book().unpaid_count()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave the books half-written
        // (each change is a few infallible map operations), so a poisoned
        // lock is still consistent.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs a fresh regtest invoice created at `now` and records it.
    fn issue(
        &self,
        now: SystemTime,
        amount_msat: u64,
        memo: &str,
        expiry: Duration,
    ) -> Result<IssuedInvoice, InvoicerError> {
        if amount_msat == 0 {
            return Err(InvoicerError::Invalid(
                "the amount must be at least 1 msat; the dev node does not issue amountless invoices".into(),
            ));
        }
        if amount_msat > MAX_MONEY_MSAT {
            return Err(InvoicerError::Invalid(format!(
                "{amount_msat} msat is more than all the bitcoin there is"
            )));
        }
        if expiry.as_secs() == 0 || expiry > MAX_INVOICE_EXPIRY {
            return Err(InvoicerError::Invalid(format!(
                "expiry must be between 1 second and {} seconds, got {:?}",
                MAX_INVOICE_EXPIRY.as_secs(),
                expiry
            )));
        }
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| InvoicerError::Backend("the system clock is before 1970".into()))?;

        let preimage = Preimage::random();
        let payment_hash = preimage.payment_hash();
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);

        let signed = InvoiceBuilder::new(Currency::Regtest)
            .description(memo.to_string())
            .payment_hash(sha256::Hash::from_byte_array(payment_hash.0))
            .payment_secret(PaymentSecret(secret))
            .duration_since_epoch(since_epoch)
            .min_final_cltv_expiry_delta(DEV_MIN_FINAL_CLTV_EXPIRY_DELTA)
            .amount_milli_satoshis(amount_msat)
            .expiry_time(expiry)
            .build_signed(|msg: &secp256k1::Message| {
                self.secp.sign_ecdsa_recoverable(msg, &self.secret_key)
            })
            .map_err(|e| InvoicerError::Invalid(e.to_string()))?;
        let invoice = Invoice::from_bolt11(signed);
        // The invoice's own clock (whole seconds) is what payers see.
        let expires_at = invoice.expires_at();

        let entry = Entry {
            preimage,
            amount_msat,
            expires_at,
            settled: false,
        };
        self.book()
            .insert(now, payment_hash, entry)
            .map_err(|cap| {
                InvoicerError::Backend(format!(
                    "the dev node already holds {cap} unpaid invoices; try again when some expire"
                ))
            })?;
        tracing::debug!(%payment_hash, amount_msat, expiry_secs = expiry.as_secs(), "dev node issued invoice");
        Ok(IssuedInvoice {
            bolt11: invoice.to_string(),
            payment_hash,
        })
    }

    /// Settles the invoice `bolt11`, at most once: the first call for an
    /// invoice this node issued returns its preimage, every later one
    /// [`SettleError::AlreadyPaid`].
    pub fn settle(&self, bolt11: &str) -> Result<Payment, SettleError> {
        // Decoding checks the signature; do it outside the lock.
        let invoice =
            Invoice::from_str(bolt11).map_err(|e| SettleError::Malformed(e.to_string()))?;
        self.settle_at(SystemTime::now(), &invoice)
    }

    fn settle_at(&self, now: SystemTime, invoice: &Invoice) -> Result<Payment, SettleError> {
        let payment_hash = invoice.payment_hash();
        // Only invoices under this node's own signature: a foreign invoice
        // that reuses one of our payment hashes is not ours.
        if invoice.as_bolt11().get_payee_pub_key() != self.node_id {
            return Err(SettleError::NotIssuedHere { payment_hash });
        }
        let mut book = self.book();
        let book = &mut *book;
        let Some(entry) = book.invoices.get_mut(&payment_hash) else {
            return Err(SettleError::NotIssuedHere { payment_hash });
        };
        if entry.settled {
            return Err(SettleError::AlreadyPaid { payment_hash });
        }
        if now >= entry.expires_at {
            return Err(SettleError::Expired {
                payment_hash,
                expired_at_unix: unix_secs(entry.expires_at),
            });
        }
        if invoice.amount_msat() != Some(entry.amount_msat) {
            // Cannot happen under our own signature; refuse rather than pay
            // an amount we did not issue.
            return Err(SettleError::Malformed(format!(
                "its amount {:?} msat differs from the {} msat this node issued",
                invoice.amount_msat(),
                entry.amount_msat
            )));
        }

        entry.settled = true;
        let payment = Payment {
            preimage: entry.preimage.clone(),
            amount_msat: entry.amount_msat,
            fee_msat: 0,
        };
        book.unpaid_by_expiry
            .remove(&(entry.expires_at, payment_hash));
        book.settled_order.push_back(payment_hash);
        book.settlements += 1;
        while book.settled_order.len() > book.max_settled {
            if let Some(old) = book.settled_order.pop_front() {
                book.invoices.remove(&old);
            }
        }
        tracing::info!(%payment_hash, amount_msat = payment.amount_msat, "dev node settled invoice");
        Ok(payment)
    }

    /// What the node knows of the invoice with `payment_hash`.
    pub fn status(&self, payment_hash: &PaymentHash) -> DevInvoiceStatus {
        self.status_at(SystemTime::now(), payment_hash)
    }

    fn status_at(&self, now: SystemTime, payment_hash: &PaymentHash) -> DevInvoiceStatus {
        match self.book().invoices.get(payment_hash) {
            None => DevInvoiceStatus::NotIssued,
            Some(e) if e.settled => DevInvoiceStatus::Settled(Payment {
                preimage: e.preimage.clone(),
                amount_msat: e.amount_msat,
                fee_msat: 0,
            }),
            Some(e) => DevInvoiceStatus::Unpaid {
                expired: now >= e.expires_at,
            },
        }
    }
}

impl Default for DevNode {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DevNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("DevNode")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Invoicer for DevNode {
    fn network(&self) -> Network {
        Network::Regtest
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        memo: &str,
        expiry: Duration,
    ) -> Result<IssuedInvoice, InvoicerError> {
        self.issue(SystemTime::now(), amount_msat, memo, expiry)
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x11; 32];

    fn node(max_unpaid: usize, max_settled: usize) -> DevNode {
        DevNode::with_limits(KEY, max_unpaid, max_settled).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(s: &str) -> Invoice {
        s.parse().unwrap()
    }

    const T0: u64 = 1_700_000_000;

    #[test]
    fn zero_amount_is_invalid() {
        let err = node(10, 10).issue(at(T0), 0, "x", DEFAULT_INVOICE_EXPIRY);
        assert!(matches!(err, Err(InvoicerError::Invalid(_))), "{err:?}");
    }

    #[test]
    fn out_of_range_expiry_and_amount_are_invalid() {
        let n = node(10, 10);
        for expiry in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_INVOICE_EXPIRY * 2,
        ] {
            let r = n.issue(at(T0), 1000, "x", expiry);
            assert!(
                matches!(r, Err(InvoicerError::Invalid(_))),
                "{expiry:?}: {r:?}"
            );
        }
        let r = n.issue(at(T0), MAX_MONEY_MSAT + 1, "x", DEFAULT_INVOICE_EXPIRY);
        assert!(matches!(r, Err(InvoicerError::Invalid(_))), "{r:?}");
        let r = n.issue(at(T0), 1000, &"x".repeat(640), DEFAULT_INVOICE_EXPIRY);
        assert!(matches!(r, Err(InvoicerError::Invalid(_))), "{r:?}");
        assert_eq!(n.unpaid_count(), 0);
    }

    #[test]
    fn unpaid_cap_refuses_then_frees_expired() {
        let n = node(3, 10);
        for _ in 0..3 {
            n.issue(at(T0), 1000, "x", Duration::from_secs(60)).unwrap();
        }
        let r = n.issue(at(T0 + 1), 1000, "x", Duration::from_secs(60));
        assert!(matches!(r, Err(InvoicerError::Backend(_))), "{r:?}");
        assert_eq!(n.unpaid_count(), 3);
        // Once they have expired, they make room.
        n.issue(at(T0 + 60), 1000, "x", Duration::from_secs(60))
            .unwrap();
        assert_eq!(n.unpaid_count(), 1);
    }

    #[test]
    fn recently_expired_invoice_answers_expired_then_is_forgotten() {
        let n = node(10, 10);
        let inv = parse(
            &n.issue(at(T0), 1000, "x", Duration::from_secs(60))
                .unwrap()
                .bolt11,
        );
        assert_eq!(
            n.settle_at(at(T0 + 60), &inv),
            Err(SettleError::Expired {
                payment_hash: inv.payment_hash(),
                expired_at_unix: T0 + 60
            })
        );
        // Another insert an hour later drops it.
        let later = T0 + 60 + EXPIRED_INVOICE_RETENTION.as_secs();
        n.issue(at(later), 1000, "x", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            n.settle_at(at(later), &inv),
            Err(SettleError::NotIssuedHere {
                payment_hash: inv.payment_hash()
            })
        );
    }

    #[test]
    fn settles_once_and_settled_invoices_leave_the_unpaid_cap() {
        let n = node(1, 10);
        let issued = n.issue(at(T0), 2500, "x", Duration::from_secs(60)).unwrap();
        let inv = parse(&issued.bolt11);
        let p = n.settle_at(at(T0 + 1), &inv).unwrap();
        assert!(p.preimage.matches(&issued.payment_hash));
        assert_eq!((p.amount_msat, p.fee_msat), (2500, 0));
        assert_eq!(
            n.settle_at(at(T0 + 2), &inv),
            Err(SettleError::AlreadyPaid {
                payment_hash: issued.payment_hash
            })
        );
        // Already paid wins over expired.
        assert_eq!(
            n.settle_at(at(T0 + 600), &inv),
            Err(SettleError::AlreadyPaid {
                payment_hash: issued.payment_hash
            })
        );
        assert_eq!(n.status(&issued.payment_hash), DevInvoiceStatus::Settled(p));
        assert_eq!(n.settlements(), 1);
        // The unpaid slot is free again.
        n.issue(at(T0 + 2), 1000, "x", Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn oldest_settlement_is_forgotten_beyond_the_cap() {
        let n = node(10, 2);
        let mut hashes = Vec::new();
        for _ in 0..3 {
            let issued = n.issue(at(T0), 1000, "x", Duration::from_secs(60)).unwrap();
            n.settle_at(at(T0), &parse(&issued.bolt11)).unwrap();
            hashes.push(issued.payment_hash);
        }
        assert_eq!(n.status_at(at(T0), &hashes[0]), DevInvoiceStatus::NotIssued);
        assert!(matches!(
            n.status_at(at(T0), &hashes[1]),
            DevInvoiceStatus::Settled(_)
        ));
        assert!(matches!(
            n.status_at(at(T0), &hashes[2]),
            DevInvoiceStatus::Settled(_)
        ));
        assert_eq!(n.settlements(), 3);
    }

    #[test]
    fn status_of_unpaid_and_unknown() {
        let n = node(10, 10);
        let issued = n.issue(at(T0), 1000, "x", Duration::from_secs(60)).unwrap();
        assert_eq!(
            n.status_at(at(T0), &issued.payment_hash),
            DevInvoiceStatus::Unpaid { expired: false }
        );
        assert_eq!(
            n.status_at(at(T0 + 60), &issued.payment_hash),
            DevInvoiceStatus::Unpaid { expired: true }
        );
        assert_eq!(n.status(&PaymentHash([7; 32])), DevInvoiceStatus::NotIssued);
        assert_eq!(
            PaymentStatus::from(DevInvoiceStatus::Unpaid { expired: false }),
            PaymentStatus::Unknown
        );
    }

    #[test]
    fn foreign_invoice_with_our_hash_is_not_ours() {
        let ours = node(10, 10);
        let issued = ours
            .issue(at(T0), 1000, "x", Duration::from_secs(60))
            .unwrap();
        // Another key signs an invoice for the same payment hash.
        let other_key = SecretKey::from_slice(&[0x22; 32]).unwrap();
        let secp = Secp256k1::new();
        let forged = InvoiceBuilder::new(Currency::Regtest)
            .description("x".into())
            .payment_hash(sha256::Hash::from_byte_array(issued.payment_hash.0))
            .payment_secret(PaymentSecret([1; 32]))
            .duration_since_epoch(Duration::from_secs(T0))
            .min_final_cltv_expiry_delta(18)
            .amount_milli_satoshis(1000)
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &other_key))
            .unwrap();
        assert_eq!(
            ours.settle_at(at(T0), &Invoice::from_bolt11(forged)),
            Err(SettleError::NotIssuedHere {
                payment_hash: issued.payment_hash
            })
        );
        assert_eq!(ours.settlements(), 0);
    }

    #[test]
    fn malformed_and_status_codes() {
        let n = node(10, 10);
        let err = n.settle("lnbcrt1garbage").unwrap_err();
        assert!(matches!(err, SettleError::Malformed(_)), "{err:?}");
        assert_eq!(err.status_code(), 400);
        let h = PaymentHash([0; 32]);
        assert_eq!(
            SettleError::NotIssuedHere { payment_hash: h }.status_code(),
            404
        );
        assert_eq!(
            SettleError::AlreadyPaid { payment_hash: h }.status_code(),
            409
        );
        let expired = SettleError::Expired {
            payment_hash: h,
            expired_at_unix: 5,
        };
        assert_eq!(expired.status_code(), 410);
        assert!(expired.to_string().ends_with('.'));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let n = node(1, 1);
        let dbg = format!("{n:?}");
        assert!(dbg.contains(&n.node_id()));
        assert!(!dbg.contains(&hex::encode(KEY)));
    }
}
