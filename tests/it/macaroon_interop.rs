//! Our macaroons against pymacaroons, an independent implementation
//! (tests/interop/macaroons.py): what Python mints we verify, and what we
//! mint (and a holder narrows) Python verifies, byte for byte.

use std::process::Command;

use l402_mcp::l402::{
    Caveat, Credential, Identifier, Macaroon, RootKey, Scheme, TokenId, VerifyContext, VerifyError,
    mint, verify,
};
use l402_mcp::lightning::Preimage;

use crate::common::{python, run_python};

const ROOT_KEY: [u8; 32] = [0x42; 32];
const PREIMAGE: [u8; 32] = [0x11; 32];
const VALID_UNTIL: u64 = 1_767_229_200;
const NOW: u64 = 1_767_225_600;

fn identifier() -> Identifier {
    Identifier {
        payment_hash: Preimage(PREIMAGE).payment_hash(),
        token_id: TokenId([0x5a; 32]),
    }
}

fn secret_hex(root: &RootKey) -> String {
    hex::encode(root.token_secret(&identifier()))
}

fn ctx(service: &str) -> VerifyContext<'_> {
    VerifyContext {
        service,
        capability: None,
        now_unix: NOW,
    }
}

#[test]
fn macaroon_minted_by_pymacaroons_verifies_here() {
    let Some(py) = python() else { return };
    let root = RootKey(ROOT_KEY);
    let id_hex = hex::encode(identifier().to_bytes());
    let until = format!("demo_valid_until={VALID_UNTIL}");
    let out = run_python(
        &py,
        "macaroons.py",
        &[
            "mint",
            &secret_hex(&root),
            &id_hex,
            "services=demo:0",
            &until,
        ],
    );
    let token = out.trim();

    // It arrives as a credential header, as a client would send it.
    let header = format!("L402 {token}:{}", hex::encode(PREIMAGE));
    let credential: Credential = header.parse().unwrap();
    assert_eq!(credential.scheme, Scheme::L402);
    assert_eq!(verify(&root, &credential, &ctx("demo")), Ok(identifier()));
    assert_eq!(
        verify(&root, &credential, &ctx("weather")),
        Err(VerifyError::Caveat {
            condition: "services".into(),
            reason: "service weather is not among demo".into(),
        })
    );
    assert_eq!(
        verify(&RootKey([0x43; 32]), &credential, &ctx("demo")),
        Err(VerifyError::Signature)
    );
    // Byte for byte what we mint from the same inputs.
    let ours = mint(
        &root,
        &identifier(),
        &[
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", VALID_UNTIL),
        ],
    );
    assert_eq!(ours.to_base64(), token);
    assert_eq!(credential.macaroon, ours);
}

fn python_verify(py: &std::path::PathBuf, secret_hex: &str, token: &str) -> String {
    run_python(py, "macaroons.py", &["verify", secret_hex, token])
}

#[test]
fn macaroon_minted_here_verifies_in_pymacaroons() {
    let Some(py) = python() else { return };
    let root = RootKey(ROOT_KEY);
    let m = mint(
        &root,
        &identifier(),
        &[
            Caveat::services(["demo", "weather"]),
            Caveat::capabilities("demo", ["read", "write"]),
            Caveat::valid_until("demo", VALID_UNTIL),
        ],
    );
    let out = python_verify(&py, &secret_hex(&root), &m.to_base64());
    let id_hex = hex::encode(identifier().to_bytes());
    assert_eq!(
        out,
        format!(
            "version 2\n\
             location lsat\n\
             identifier {id_hex}\n\
             caveat services=demo:0,weather:0\n\
             caveat demo_capabilities=read,write\n\
             caveat demo_valid_until={VALID_UNTIL}\n\
             verified\n"
        )
    );
}

#[test]
fn macaroon_narrowed_here_verifies_in_pymacaroons() {
    let Some(py) = python() else { return };
    let root = RootKey(ROOT_KEY);
    let mut m = mint(
        &root,
        &identifier(),
        &[Caveat::services(["demo", "weather"])],
    );
    m.add_caveat(&Caveat::services(["demo"])).unwrap();
    m.add_caveat(&Caveat::capabilities("demo", ["read"]))
        .unwrap();
    // pymacaroons reads the URL-safe unpadded form too.
    let url = m
        .to_base64()
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let out = python_verify(&py, &secret_hex(&root), &url);
    assert_eq!(
        out,
        format!(
            "version 2\n\
             location lsat\n\
             identifier {}\n\
             caveat services=demo:0,weather:0\n\
             caveat services=demo:0\n\
             caveat demo_capabilities=read\n\
             verified\n",
            hex::encode(identifier().to_bytes())
        )
    );
    // And we agree with Python about it.
    let credential = Credential::new(url.parse::<Macaroon>().unwrap(), Preimage(PREIMAGE));
    assert_eq!(verify(&root, &credential, &ctx("demo")), Ok(identifier()));
}

#[test]
fn pymacaroons_refuses_our_macaroon_under_another_root_key() {
    let Some(py) = python() else { return };
    let m = mint(
        &RootKey(ROOT_KEY),
        &identifier(),
        &[Caveat::services(["demo"])],
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/macaroons.py");
    let out = Command::new(&py)
        .args([
            script,
            "verify",
            &secret_hex(&RootKey([0x43; 32])),
            &m.to_base64(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MacaroonInvalidSignatureException"),
        "{stderr}"
    );
}
