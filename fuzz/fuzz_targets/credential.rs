//! `Authorization` values reach the gateway from anyone: parsing and
//! verifying must never panic, and must never accept a forgery.
#![no_main]

use l402_mcp::l402::{Credential, RootKey, VerifyContext, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(credential) = text.parse::<Credential>() else { return };
    let again: Credential = credential.to_string().parse().expect("a printed credential parses");
    assert_eq!(again, credential);
    // No fuzzer-made credential can carry a valid HMAC under this key.
    let ctx = VerifyContext { service: "demo", capability: None, now_unix: 1_800_000_000 };
    assert!(verify(&RootKey([7; 32]), &credential, &ctx).is_err());
});
