//! The L402 hot paths: a client parsing aperture's 402, a gateway parsing
//! and verifying a credential.
//!
//! `cargo bench --bench l402 -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use l402_mcp::l402::{
    Caveat, Challenge, Credential, Identifier, RootKey, TokenId, VerifyContext, mint, verify,
};
use l402_mcp::lightning::Preimage;

/// A real regtest invoice (see tests/it/l402_vectors.rs).
const INVOICE: &str = "lnbcrt1u1p54twgqpp5qt2yngclhvn8ere496vk3fu78e0ujhqmh649qt7kg48tmedyhmwqsp5yg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3qdpqds6rqv3dd43hqgr5v4ehggrkv43hgmmjxqrrsscqzzs9qrsgq4ajspkf49h2k7nsvqannsgqveneyf0j4uytf6h8acv5d873e5a6nm5dmh2878kapg0t9l3m856yvqjtanz0mqd6ykd36qpcz3pemf4qphrnaqf";
const VALID_UNTIL: u64 = 1_767_229_200;

fn benches(c: &mut Criterion) {
    // Setup, outside every timed loop.
    let root = RootKey([0x42; 32]);
    let preimage = Preimage([0x11; 32]);
    let identifier = Identifier {
        payment_hash: preimage.payment_hash(),
        token_id: TokenId([0x5a; 32]),
    };
    let macaroon = mint(
        &root,
        &identifier,
        &[
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", VALID_UNTIL),
        ],
    );
    let params = format!(r#"macaroon="{macaroon}", invoice="{INVOICE}""#);
    let lsat_value = format!("LSAT {params}");
    let l402_value = format!("L402 {params}");
    let credential_value = Credential::new(macaroon, preimage).to_string();
    let credential: Credential = credential_value.parse().expect("credential parses");
    let ctx = VerifyContext {
        service: "demo",
        capability: None,
        now_unix: VALID_UNTIL - 3600,
    };
    verify(&root, &credential, &ctx).expect("credential verifies");

    c.bench_function("parse aperture's two-header challenge", |b| {
        b.iter(|| {
            Challenge::parse_all([
                black_box(lsat_value.as_str()),
                black_box(l402_value.as_str()),
            ])
        });
    });
    c.bench_function("parse a credential", |b| {
        b.iter(|| black_box(credential_value.as_str()).parse::<Credential>());
    });
    c.bench_function("verify a credential", |b| {
        b.iter(|| verify(black_box(&root), black_box(&credential), black_box(&ctx)));
    });
}

criterion_group!(l402, benches);
criterion_main!(l402);
