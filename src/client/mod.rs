//! The L402 client: decides whether money moves.

pub mod net;
