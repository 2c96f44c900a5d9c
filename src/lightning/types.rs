//! Fixed-size Lightning primitives: payment hashes, preimages, networks.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a hash, preimage or network name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrimitiveError {
    /// Not 64 hex digits.
    #[error("{what} must be 64 hex digits (32 bytes), got {len} characters")]
    BadHexLength {
        /// "payment hash" or "preimage".
        what: &'static str,
        /// The length seen.
        len: usize,
    },
    /// Hex digits expected.
    #[error("{what} is not valid hex")]
    NotHex {
        /// "payment hash" or "preimage".
        what: &'static str,
    },
    /// Unknown network name.
    #[error("unknown network {0:?}: expected mainnet, testnet, signet, regtest or simnet")]
    UnknownNetwork(String),
}

fn parse_hex32(s: &str, what: &'static str) -> Result<[u8; 32], PrimitiveError> {
    if s.len() != 64 {
        return Err(PrimitiveError::BadHexLength { what, len: s.len() });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| PrimitiveError::NotHex { what })?;
    Ok(out)
}

/// A payment hash: `sha256(preimage)`. Public; fine to log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentHash(pub [u8; 32]);

impl PaymentHash {
    /// The hash as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", self.to_hex())
    }
}

impl FromStr for PaymentHash {
    type Err = PrimitiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s, "payment hash").map(PaymentHash)
    }
}

/// A payment preimage: the proof of payment, and half of an L402
/// credential. Secret: its `Debug` is redacted, it has no `Display`, it is
/// compared in constant time and wiped on drop. Use [`Preimage::to_hex`]
/// only where the credential itself is being written.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Preimage(pub [u8; 32]);

impl Preimage {
    /// A fresh random preimage from the OS RNG.
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        Preimage(b)
    }

    /// `sha256(self)`.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(Sha256::digest(self.0).into())
    }

    /// True when this preimage is the one `hash` commits to (constant time).
    pub fn matches(&self, hash: &PaymentHash) -> bool {
        self.payment_hash().0.ct_eq(&hash.0).into()
    }

    /// Lowercase hex. Secret: for building a credential, never for logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for Preimage {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Preimage {}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

impl FromStr for Preimage {
    type Err = PrimitiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s, "preimage").map(Preimage)
    }
}

/// A Bitcoin network. An invoice for one network is never paid from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// Real money.
    Mainnet,
    /// testnet3 / testnet4 (BOLT11 cannot tell them apart).
    Testnet,
    /// signet.
    Signet,
    /// regtest: the dev network and local test networks.
    Regtest,
    /// simnet (btcd).
    Simnet,
}

impl Network {
    /// The canonical lowercase name (LND's `GetInfo` spelling, except
    /// `mainnet`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
            Network::Simnet => "simnet",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = PrimitiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mainnet" | "bitcoin" | "main" => Ok(Network::Mainnet),
            "testnet" | "testnet3" | "testnet4" | "test" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            "simnet" => Ok(Network::Simnet),
            _ => Err(PrimitiveError::UnknownNetwork(s.to_string())),
        }
    }
}

impl From<lightning_invoice::Currency> for Network {
    fn from(c: lightning_invoice::Currency) -> Self {
        use lightning_invoice::Currency;
        match c {
            Currency::Bitcoin => Network::Mainnet,
            Currency::BitcoinTestnet => Network::Testnet,
            Currency::Signet => Network::Signet,
            Currency::Regtest => Network::Regtest,
            Currency::Simnet => Network::Simnet,
        }
    }
}

impl From<Network> for lightning_invoice::Currency {
    fn from(n: Network) -> Self {
        use lightning_invoice::Currency;
        match n {
            Network::Mainnet => Currency::Bitcoin,
            Network::Testnet => Currency::BitcoinTestnet,
            Network::Signet => Currency::Signet,
            Network::Regtest => Currency::Regtest,
            Network::Simnet => Currency::Simnet,
        }
    }
}

/// An amount in millisatoshis (the unit Lightning counts in; 1 sat = 1000
/// msat), shown to people as sats: `1200 sats`, `1200.5 sats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Msat(pub u64);

impl fmt::Display for Msat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sats, msat) = (self.0 / 1000, self.0 % 1000);
        if msat == 0 {
            write!(f, "{sats} sats")
        } else {
            let frac = format!("{msat:03}");
            write!(f, "{sats}.{} sats", frac.trim_end_matches('0'))
        }
    }
}
