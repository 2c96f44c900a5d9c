//! The integration suite: one test binary (a clean build here is slow, so
//! the suites share one link step), one module per area.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

mod alby;
mod cli;
mod client;
mod client_payment;
mod dashboard;
mod dev_node;
mod gateway;
mod gateway_metrics;
mod gateway_payment;
mod gateway_replicas;
mod l402_vectors;
mod listen;
mod lnd;
mod macaroon_interop;
mod mcp;
mod mcp_wire;
mod nwc;
mod nwc_payer;
mod payment_interop;
mod registration;
mod regtest;
mod store;
