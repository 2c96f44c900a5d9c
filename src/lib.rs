//! l402-mcp: let AI agents pay for HTTP APIs over Bitcoin Lightning (L402),
//! with the money under the operator's control.
//!
//! The layers, top to bottom: the CLI and MCP faces, the L402 client, the
//! [`l402`] protocol nouns, and [`lightning`] backends; beside them the
//! [`gateway`], an L402-gated HTTP server with an embedded dev node.

pub mod budget;
pub mod client;
pub mod dashboard;
pub mod gateway;
pub mod l402;
pub mod lightning;
pub mod listen;
pub mod mcp;
pub mod store;
pub mod text;
