//! The L402 gateway.
