//! The dev Lightning network: a node that signs real regtest BOLT11
//! invoices and settles them over HTTP, and a payer that pays through it.
