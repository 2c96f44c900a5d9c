//! Vectors for the `l402` module: challenge headers as servers send them,
//! credentials, identifiers, and the caveat rules `verify` enforces.
//!
//! Every macaroon is minted from one fixed root key and identifier, so the
//! expected values are exact; the fixture macaroon's base64 is pinned to
//! what pymacaroons (an independent implementation) mints from the same
//! inputs, and the invoice is a real signed regtest invoice for the
//! identifier's payment hash.

use l402_mcp::l402::{
    Caveat, Challenge, ChallengeError, Credential, CredentialError, IDENTIFIER_LEN, Identifier,
    IdentifierError, MAX_CHALLENGE_HEADER_LEN, Macaroon, MacaroonError, RootKey, Scheme, TokenId,
    VerifyContext, VerifyError, mint, verify,
};
use l402_mcp::lightning::{Invoice, PaymentHash, Preimage};

// ---------------------------------------------------------------------------
// Fixtures

const ROOT_KEY: [u8; 32] = [0x42; 32];
const PREIMAGE: [u8; 32] = [0x11; 32];
const PREIMAGE_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// sha256(PREIMAGE).
const PAYMENT_HASH_HEX: &str = "02d449a31fbb267c8f352e9968a79e3e5fc95c1bbeaa502fd6454ebde5a4bedc";
const TOKEN_ID: [u8; 32] = [0x5a; 32];
/// 2026-01-01T01:00:00Z.
const VALID_UNTIL: u64 = 1_767_229_200;
/// One hour before `VALID_UNTIL`.
const NOW: u64 = 1_767_225_600;

/// A real regtest invoice: 100 sat, payment hash sha256(PREIMAGE), signed
/// with key 0x33..33, features var_onion_optin + payment_secret (made with
/// python `bolt11`).
const INVOICE: &str = "lnbcrt1u1p54twgqpp5qt2yngclhvn8ere496vk3fu78e0ujhqmh649qt7kg48tmedyhmwqsp5yg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3qdpqds6rqv3dd43hqgr5v4ehggrkv43hgmmjxqrrsscqzzs9qrsgq4ajspkf49h2k7nsvqannsgqveneyf0j4uytf6h8acv5d873e5a6nm5dmh2878kapg0t9l3m856yvqjtanz0mqd6ykd36qpcz3pemf4qphrnaqf";

/// `tests/interop/macaroons.py mint <HMAC(ROOT_KEY, id)> <id> services=demo:0
/// demo_valid_until=1767229200`: pymacaroons' mint of [`fixture`].
const FIXTURE_B64: &str = "AgEEbHNhdAJCAAAC1EmjH7smfI81Lplop54+X8lcG76qUC/WRU695aS+3FpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaAAIPc2VydmljZXM9ZGVtbzowAAIbZGVtb192YWxpZF91bnRpbD0xNzY3MjI5MjAwAAAGIPxkI5cnKTj2Ul1SYKlQ7ID2rMuG1mZkZElKia4sMiXb";

fn root() -> RootKey {
    RootKey(ROOT_KEY)
}

fn identifier() -> Identifier {
    Identifier {
        payment_hash: PAYMENT_HASH_HEX.parse().unwrap(),
        token_id: TokenId(TOKEN_ID),
    }
}

fn minted(caveats: &[Caveat]) -> Macaroon {
    mint(&root(), &identifier(), caveats)
}

/// The macaroon the challenge vectors carry: `services=demo:0`,
/// `demo_valid_until=VALID_UNTIL`.
fn fixture() -> Macaroon {
    minted(&[
        Caveat::services(["demo"]),
        Caveat::valid_until("demo", VALID_UNTIL),
    ])
}

fn challenge(scheme: Scheme, version: Option<&str>) -> Challenge {
    Challenge {
        scheme,
        macaroon: fixture(),
        invoice: INVOICE.to_owned(),
        version: version.map(str::to_owned),
    }
}

#[test]
fn fixture_macaroon_is_what_pymacaroons_mints() {
    assert_eq!(fixture().to_base64(), FIXTURE_B64);
    assert_eq!(FIXTURE_B64.parse::<Macaroon>().unwrap(), fixture());
}

#[test]
fn fixture_invoice_commits_to_the_identifier_hash() {
    let invoice: Invoice = INVOICE.parse().unwrap();
    assert_eq!(invoice.payment_hash(), identifier().payment_hash);
    assert_eq!(Preimage(PREIMAGE).payment_hash(), identifier().payment_hash);
}

// ---------------------------------------------------------------------------
// Challenges

struct Vector {
    name: &'static str,
    values: Vec<String>,
    expected: Result<Vec<Challenge>, ChallengeError>,
}

fn vectors() -> Vec<Vector> {
    use ChallengeError as E;
    use Scheme::{L402, Lsat};
    let m = FIXTURE_B64;
    let i = INVOICE;
    let url_unpadded = base64_url_unpadded(&fixture());
    // A macaroon whose standard base64 ends in `=`, for unquoted values.
    let padded = minted(&[
        Caveat::services(["demo"]),
        Caveat::capabilities("demo", ["read"]),
    ]);
    let padded_b64 = padded.to_base64();
    assert!(padded_b64.ends_with("=="), "{padded_b64}");
    let with_padded = Challenge {
        macaroon: padded,
        ..challenge(L402, None)
    };
    let aperture = format!(r#"macaroon="{m}", invoice="{i}""#);
    // Sized so the whole value is exactly `len` bytes.
    let sized = |len: usize| {
        let head = format!(r#"L402 macaroon="{m}", invoice="{i}", pad=""#);
        format!("{head}{}\"", "x".repeat(len - head.len() - 1))
    };
    let unterminated = format!(r#"L402 macaroon="{m}", invoice="{i}"#);
    let open_quote = unterminated.rfind('"').unwrap();

    let v = |name, values: &[&str], expected| Vector {
        name,
        values: values.iter().map(|s| (*s).to_owned()).collect(),
        expected,
    };
    vec![
        // --- Forms servers send.
        v(
            "aperture's 402: an LSAT value, then an L402 value, same content",
            &[&format!("LSAT {aperture}"), &format!("L402 {aperture}")],
            Ok(vec![challenge(Lsat, None), challenge(L402, None)]),
        ),
        v(
            "aperture's L402 value alone",
            &[&format!("L402 {aperture}")],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "the 2026 form: version and token",
            &[&format!(r#"L402 version="0", token="{m}", invoice="{i}""#)],
            Ok(vec![challenge(L402, Some("0"))]),
        ),
        v(
            "the 2026 form with bare values",
            &[&format!("L402 version=0, token={m}, invoice={i}")],
            Ok(vec![challenge(L402, Some("0"))]),
        ),
        v(
            "macaroon and token both, equal",
            &[&format!(
                r#"L402 macaroon="{m}", token="{m}", invoice="{i}""#
            )],
            Ok(vec![challenge(L402, None)]),
        ),
        // --- Case.
        v(
            "lower-case scheme",
            &[&format!("l402 {aperture}")],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "upper-case parameter names",
            &[&format!(
                r#"L402 MACAROON="{m}", INVOICE="{i}", VERSION="0""#
            )],
            Ok(vec![challenge(L402, Some("0"))]),
        ),
        v(
            "mixed-case legacy scheme",
            &[&format!(r#"lSaT Macaroon="{m}", Invoice="{i}""#)],
            Ok(vec![challenge(Lsat, None)]),
        ),
        // --- Order and extra parameters.
        v(
            "parameters reordered",
            &[&format!(r#"L402 invoice="{i}", macaroon="{m}""#)],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "unknown parameters ignored, one holding a comma",
            &[&format!(
                r#"L402 realm="api", macaroon="{m}", foo=bar, invoice="{i}", note="a, b""#
            )],
            Ok(vec![challenge(L402, None)]),
        ),
        // --- Other schemes beside L402.
        v(
            "Bearer before L402 in one value",
            &[&format!(r#"Bearer realm="x", L402 {aperture}"#)],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "L402 before a Bearer with several parameters in one value",
            &[&format!(
                r#"L402 {aperture}, Bearer realm="x", error="invalid_token", error_description="expired, sorry""#
            )],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "Bearer and L402 in separate values",
            &["Bearer realm=\"x\"", &format!("L402 {aperture}")],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "Negotiate token68, bare Basic and Digest beside",
            &[
                &format!("Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag+/MDAu==, Basic, L402 {aperture}"),
                r#"Digest realm="x", qop="auth,auth-int", nonce="dcd98b", opaque="5ccc""#,
            ],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "LSAT and L402 in one value",
            &[&format!("LSAT {aperture}, L402 {aperture}")],
            Ok(vec![challenge(Lsat, None), challenge(L402, None)]),
        ),
        // --- Value syntax.
        v(
            "bare standard base64 with padding",
            &[&format!("L402 macaroon={padded_b64}, invoice={i}")],
            Ok(vec![with_padded.clone()]),
        ),
        v(
            "bare padded value last in the header",
            &[&format!("L402 invoice={i}, macaroon={padded_b64}")],
            Ok(vec![with_padded]),
        ),
        v(
            "URL-safe unpadded macaroon",
            &[&format!(r#"L402 macaroon="{url_unpadded}", invoice="{i}""#)],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "escaped quotes and backslashes",
            &[&format!(
                r#"L402 note="say \"hi\" \\o/", macaroon="{m}", invoice="\{i}""#
            )],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "optional whitespace everywhere",
            &[&format!("  L402   macaroon = \"{m}\" ,invoice=\t\"{i}\"  ")],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "tabs and empty list elements",
            &[&format!(",, L402\tmacaroon=\"{m}\",,\tinvoice=\"{i}\",")],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "exactly the size limit",
            &[&sized(MAX_CHALLENGE_HEADER_LEN)],
            Ok(vec![challenge(L402, None)]),
        ),
        v(
            "a malformed value beside a good one is skipped",
            &[
                "Bearer realm=\"unterminated",
                &format!(r#"L402 macaroon="{m}""#),
                &format!("L402 {aperture}"),
            ],
            Ok(vec![challenge(L402, None)]),
        ),
        // --- Malformed.
        v(
            "unterminated quote",
            &[&unterminated],
            Err(E::Syntax(format!(
                "unterminated quoted string starting at byte {open_quote}"
            ))),
        ),
        v(
            "missing invoice",
            &[&format!(r#"L402 macaroon="{m}""#)],
            Err(E::MissingParam("invoice")),
        ),
        v(
            "empty invoice",
            &[&format!(r#"L402 macaroon="{m}", invoice="""#)],
            Err(E::MissingParam("invoice")),
        ),
        v(
            "missing macaroon",
            &[&format!(r#"L402 invoice="{i}""#)],
            Err(E::MissingParam("macaroon")),
        ),
        v(
            "token68 instead of parameters",
            &["L402 AgEEbHNhdA=="],
            Err(E::MissingParam("macaroon")),
        ),
        v(
            "duplicate macaroon",
            &[&format!(
                r#"L402 macaroon="{m}", invoice="{i}", macaroon="{m}""#
            )],
            Err(E::DuplicateParam("macaroon".into())),
        ),
        v(
            "duplicate invoice, names differing in case",
            &[&format!(
                r#"L402 macaroon="{m}", invoice="{i}", Invoice="{i}""#
            )],
            Err(E::DuplicateParam("invoice".into())),
        ),
        v(
            "macaroon and token disagree",
            &[&format!(
                r#"L402 macaroon="{m}", token="{padded_b64}", invoice="{i}""#
            )],
            Err(E::DuplicateParam("token".into())),
        ),
        v(
            "bad base64",
            &[&format!(r#"L402 macaroon="not*base64", invoice="{i}""#)],
            Err(E::Macaroon(MacaroonError::Base64)),
        ),
        v(
            "empty macaroon",
            &[&format!(r#"L402 macaroon="", invoice="{i}""#)],
            Err(E::Macaroon(MacaroonError::Empty)),
        ),
        v(
            "V2JSON macaroon",
            &[&format!(r#"L402 macaroon="{{\"v\":2}}", invoice="{i}""#)],
            Err(E::Macaroon(MacaroonError::Json)),
        ),
        v(
            "missing '=' after a parameter name",
            &[&format!(r#"L402 macaroon "{m}""#)],
            Err(E::Syntax(
                "expected '=' after parameter macaroon (found '\"' at byte 14)".into(),
            )),
        ),
        v(
            "no space after the scheme",
            &[r#"L402"x""#],
            Err(E::Syntax(
                "expected a space after auth scheme L402 (found '\"' at byte 4)".into(),
            )),
        ),
        v(
            "16 KiB + 1",
            &[&sized(MAX_CHALLENGE_HEADER_LEN + 1)],
            Err(E::TooLong(MAX_CHALLENGE_HEADER_LEN + 1)),
        ),
        v("empty value", &[""], Err(E::NoL402Challenge)),
        v("no values", &[], Err(E::NoL402Challenge)),
        v(
            "only Bearer",
            &["Bearer realm=\"api\", error=\"invalid_token\""],
            Err(E::NoL402Challenge),
        ),
        v(
            "the first error wins when nothing parses",
            &[
                &format!(r#"L402 invoice="{i}""#),
                &format!(r#"L402 macaroon="{m}""#),
            ],
            Err(E::MissingParam("macaroon")),
        ),
    ]
}

fn base64_url_unpadded(m: &Macaroon) -> String {
    m.to_base64()
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

#[test]
fn challenge_vectors_parse_to_exact_results() {
    let vectors = vectors();
    assert!(vectors.len() >= 25);
    for v in vectors {
        let got = Challenge::parse_all(v.values.iter().map(String::as_str));
        assert_eq!(got, v.expected, "vector: {}", v.name);
    }
}

#[test]
fn from_str_returns_the_first_challenge_of_a_value() {
    let m = FIXTURE_B64;
    let i = INVOICE;
    let value = format!(
        r#"Bearer realm="x", LSAT macaroon="{m}", invoice="{i}", L402 macaroon="{m}", invoice="{i}""#
    );
    assert_eq!(value.parse(), Ok(challenge(Scheme::Lsat, None)));
    assert_eq!(
        "Bearer realm=\"x\"".parse::<Challenge>(),
        Err(ChallengeError::NoL402Challenge)
    );
}

#[test]
fn challenge_display_is_aperture_format_and_round_trips() {
    let m = FIXTURE_B64;
    let i = INVOICE;
    assert_eq!(
        challenge(Scheme::L402, None).to_string(),
        format!(r#"L402 macaroon="{m}", invoice="{i}""#)
    );
    assert_eq!(
        challenge(Scheme::Lsat, None).to_string(),
        format!(r#"LSAT macaroon="{m}", invoice="{i}""#)
    );
    assert_eq!(
        challenge(Scheme::L402, Some("0")).to_string(),
        format!(r#"L402 version="0", token="{m}", invoice="{i}""#)
    );
    for v in vectors() {
        for c in v.expected.into_iter().flatten() {
            assert_eq!(c.to_string().parse(), Ok(c.clone()), "vector: {}", v.name);
        }
    }
    // Quotes and backslashes in an (odd) invoice survive the round trip.
    let odd = Challenge {
        invoice: r#"a"b\c"#.into(),
        version: Some("x\"y".into()),
        ..challenge(Scheme::L402, None)
    };
    assert_eq!(odd.to_string().parse(), Ok(odd));
}

/// A small deterministic generator, so the no-panic sweep needs no crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn challenge_parsing_never_panics() {
    let m = FIXTURE_B64;
    let i = INVOICE;
    let good = format!(
        r#"Bearer realm="é€", LSAT macaroon="{m}", invoice="{i}", L402 version="0", token={m}, invoice="\{i}\"", Negotiate ab=="#
    );
    // Every prefix and every one-character deletion of a rich value.
    let boundaries: Vec<usize> = good.char_indices().map(|(n, _)| n).collect();
    for &n in &boundaries {
        let _ = Challenge::parse_all([&good[..n]]);
        let mut cut = good.clone();
        cut.remove(n);
        let _ = Challenge::parse_all([cut.as_str()]);
    }
    // Random strings over the characters the grammar cares about.
    let pieces = [
        "L402", "LSAT", "Bearer", " ", "\t", ",", "=", "\"", "\\", "macaroon", "token", "invoice",
        "version", "é", "€", "\u{1}", m, i, "==", "a",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.next() % 12;
        let s: String = (0..len)
            .map(|_| pieces[(rng.next() % pieces.len() as u64) as usize])
            .collect();
        let _ = Challenge::parse_all([s.as_str()]);
        let _ = s.parse::<Credential>();
    }
}

// ---------------------------------------------------------------------------
// Credentials

fn credential(scheme: Scheme, macaroon: Macaroon) -> Credential {
    Credential {
        scheme,
        macaroon,
        preimage: Preimage(PREIMAGE),
    }
}

#[test]
fn credential_vectors_parse_to_exact_results() {
    use CredentialError as E;
    let m = FIXTURE_B64;
    let p = PREIMAGE_HEX;
    let url = base64_url_unpadded(&fixture());
    let upper = PREIMAGE_HEX.to_uppercase().replace('1', "A");
    let cases: Vec<(String, Result<Credential, CredentialError>)> = vec![
        (
            format!("L402 {m}:{p}"),
            Ok(credential(Scheme::L402, fixture())),
        ),
        (
            format!("LSAT {m}:{p}"),
            Ok(credential(Scheme::Lsat, fixture())),
        ),
        (
            format!("l402 {m}:{p}"),
            Ok(credential(Scheme::L402, fixture())),
        ),
        (
            format!("lsat {m}:{p}"),
            Ok(credential(Scheme::Lsat, fixture())),
        ),
        (
            format!(" \tL402  \t{m}:{p} \t"),
            Ok(credential(Scheme::L402, fixture())),
        ),
        (
            format!("L402 {url}:{p}"),
            Ok(credential(Scheme::L402, fixture())),
        ),
        (
            format!("L402 {m}:{upper}"),
            Ok(Credential {
                preimage: Preimage([0xaa; 32]),
                ..credential(Scheme::L402, fixture())
            }),
        ),
        (format!("Bearer {m}:{p}"), Err(E::NotL402)),
        (format!("L402{m}:{p}"), Err(E::NotL402)),
        (String::new(), Err(E::NotL402)),
        (format!("L402 {m}"), Err(E::Syntax)),
        ("L402".into(), Err(E::Syntax)),
        ("L402   ".into(), Err(E::Syntax)),
        (format!("L402 {m}:abc"), Err(E::Preimage)),
        (format!("L402 {m}:{}", &p[1..]), Err(E::Preimage)),
        (format!("L402 {m}:{}", "zz".repeat(32)), Err(E::Preimage)),
        (format!("L402 {m}:{p}:{p}"), Err(E::Preimage)),
        (format!("L402 {m}: {p}"), Err(E::Preimage)),
        (
            format!("L402 not*base64:{p}"),
            Err(E::Macaroon(MacaroonError::Base64)),
        ),
        (format!("L402 :{p}"), Err(E::Macaroon(MacaroonError::Empty))),
    ];
    for (value, expected) in cases {
        assert_eq!(value.parse::<Credential>(), expected, "value: {value:?}");
    }
}

#[test]
fn credential_display_is_standard_base64_and_lowercase_hex() {
    let url = base64_url_unpadded(&fixture());
    let upper = PREIMAGE_HEX.to_uppercase().replace('1', "A");
    let c: Credential = format!("l402 {url}:{upper}").parse().unwrap();
    assert_eq!(
        c.to_string(),
        format!("L402 {FIXTURE_B64}:{}", "aa".repeat(32))
    );
    let lsat = credential(Scheme::Lsat, fixture());
    assert_eq!(
        lsat.to_string(),
        format!("LSAT {FIXTURE_B64}:{PREIMAGE_HEX}")
    );
    assert_eq!(lsat.to_string().parse(), Ok(lsat));
}

#[test]
fn credential_debug_is_redacted() {
    let c = credential(Scheme::L402, fixture());
    assert_eq!(format!("{c:?}"), "Credential(<redacted>)");
}

#[test]
fn first_l402_authorization_value_wins() {
    let m = FIXTURE_B64;
    let p = PREIMAGE_HEX;
    let lsat = format!("LSAT {m}:{p}");
    let l402 = format!("L402 {m}:{p}");
    // aperture's client sends both.
    assert_eq!(
        Credential::from_header_values([lsat.as_str(), l402.as_str()]),
        Ok(Some(credential(Scheme::Lsat, fixture())))
    );
    assert_eq!(
        Credential::from_header_values(["Bearer abc", "Basic dXNlcjpwdw==", l402.as_str()]),
        Ok(Some(credential(Scheme::L402, fixture())))
    );
    assert_eq!(Credential::from_header_values(["Bearer abc"]), Ok(None));
    assert_eq!(Credential::from_header_values([]), Ok(None));
    assert_eq!(
        Credential::from_header_values(["L402 broken", l402.as_str()]),
        Err(CredentialError::Syntax)
    );
}

// ---------------------------------------------------------------------------
// Identifiers

#[test]
fn identifier_has_exact_bytes_and_round_trips() {
    let bytes = identifier().to_bytes();
    assert_eq!(bytes.len(), IDENTIFIER_LEN);
    assert_eq!(
        hex::encode(bytes),
        format!("0000{PAYMENT_HASH_HEX}{}", "5a".repeat(32))
    );
    assert_eq!(Identifier::from_bytes(&bytes), Ok(identifier()));
    assert_eq!(fixture().identifier(), Ok(identifier()));
    assert_eq!(fixture().raw_identifier(), bytes);
    let fresh = Identifier::new(PaymentHash([9; 32]));
    assert_eq!(fresh.payment_hash, PaymentHash([9; 32]));
    assert_eq!(Identifier::from_bytes(&fresh.to_bytes()), Ok(fresh));
}

#[test]
fn identifier_rejects_bad_length_and_version() {
    let bytes = identifier().to_bytes();
    assert_eq!(
        Identifier::from_bytes(&bytes[..65]),
        Err(IdentifierError::BadLength(65))
    );
    assert_eq!(
        Identifier::from_bytes(&[bytes.as_slice(), &[0]].concat()),
        Err(IdentifierError::BadLength(67))
    );
    assert_eq!(
        Identifier::from_bytes(&[]),
        Err(IdentifierError::BadLength(0))
    );
    let mut v1 = bytes;
    v1[1] = 1;
    assert_eq!(
        Identifier::from_bytes(&v1),
        Err(IdentifierError::UnknownVersion(1))
    );
    v1[0] = 0xff;
    assert_eq!(
        Identifier::from_bytes(&v1[..3]),
        Err(IdentifierError::UnknownVersion(0xff01))
    );
}

// ---------------------------------------------------------------------------
// Verification and caveats

fn ctx<'a>(service: &'a str, capability: Option<&'a str>) -> VerifyContext<'a> {
    VerifyContext {
        service,
        capability,
        now_unix: NOW,
    }
}

fn check(m: Macaroon, ctx: &VerifyContext<'_>) -> Result<Identifier, VerifyError> {
    verify(&root(), &credential(Scheme::L402, m), ctx)
}

/// A macaroon minted with `base`, then narrowed by its holder with `added`.
fn narrowed(base: &[Caveat], added: &[Caveat]) -> Macaroon {
    let mut m = minted(base);
    for c in added {
        m.add_caveat(c).unwrap();
    }
    m
}

fn caveat_error(condition: &str, reason: &str) -> VerifyError {
    VerifyError::Caveat {
        condition: condition.into(),
        reason: reason.into(),
    }
}

#[test]
fn good_credential_verifies_and_returns_its_identifier() {
    assert_eq!(check(fixture(), &ctx("demo", None)), Ok(identifier()));
    // End to end through the wire forms.
    let c: Challenge = format!(r#"L402 macaroon="{FIXTURE_B64}", invoice="{INVOICE}""#)
        .parse()
        .unwrap();
    let header = Credential::new(c.macaroon, Preimage(PREIMAGE)).to_string();
    let parsed = Credential::from_header_values([header.as_str()])
        .unwrap()
        .unwrap();
    assert_eq!(
        verify(&root(), &parsed, &ctx("demo", None)),
        Ok(identifier())
    );
}

#[test]
fn services_caveat_is_enforced() {
    assert_eq!(
        check(fixture(), &ctx("weather", None)),
        Err(caveat_error(
            "services",
            "service weather is not among demo"
        ))
    );
}

#[test]
fn capabilities_caveat_is_enforced() {
    let m = minted(&[
        Caveat::services(["demo"]),
        Caveat::capabilities("demo", ["read"]),
    ]);
    assert_eq!(
        check(m.clone(), &ctx("demo", Some("read"))),
        Ok(identifier())
    );
    assert_eq!(check(m.clone(), &ctx("demo", None)), Ok(identifier()));
    assert_eq!(
        check(m, &ctx("demo", Some("write"))),
        Err(caveat_error(
            "demo_capabilities",
            "capability write is not among read"
        ))
    );
}

#[test]
fn valid_until_caveat_is_enforced() {
    let at = |now_unix| VerifyContext {
        now_unix,
        ..ctx("demo", None)
    };
    assert_eq!(check(fixture(), &at(VALID_UNTIL - 1)), Ok(identifier()));
    assert_eq!(
        check(fixture(), &at(VALID_UNTIL)),
        Err(VerifyError::Expired)
    );
    assert_eq!(check(fixture(), &at(u64::MAX)), Err(VerifyError::Expired));
}

#[test]
fn token_without_services_is_refused() {
    let m = minted(&[Caveat::valid_until("demo", VALID_UNTIL)]);
    assert_eq!(check(m, &ctx("demo", None)), Err(VerifyError::NoServices));
    assert_eq!(
        check(minted(&[]), &ctx("demo", None)),
        Err(VerifyError::NoServices)
    );
}

#[test]
fn malformed_caveat_values_are_refused() {
    let m = minted(&[Caveat::new("services", "demo")]);
    assert_eq!(
        check(m, &ctx("demo", None)),
        Err(caveat_error(
            "services",
            "\"demo\" is not of the form name:tier"
        ))
    );
    let m = minted(&[
        Caveat::services(["demo"]),
        Caveat::new("demo_valid_until", "soon"),
    ]);
    assert_eq!(
        check(m, &ctx("demo", None)),
        Err(caveat_error(
            "demo_valid_until",
            "\"soon\" is not a unix time"
        ))
    );
}

#[test]
fn narrowing_services_is_accepted_and_the_last_decides() {
    let m = narrowed(
        &[Caveat::services(["demo", "weather"])],
        &[Caveat::services(["demo"])],
    );
    assert_eq!(check(m.clone(), &ctx("demo", None)), Ok(identifier()));
    assert_eq!(
        check(m, &ctx("weather", None)),
        Err(caveat_error(
            "services",
            "service weather is not among demo"
        ))
    );
}

#[test]
fn narrowing_capabilities_is_accepted_and_the_last_decides() {
    let m = narrowed(
        &[
            Caveat::services(["demo"]),
            Caveat::capabilities("demo", ["read", "write"]),
        ],
        &[Caveat::capabilities("demo", ["read"])],
    );
    assert_eq!(
        check(m.clone(), &ctx("demo", Some("read"))),
        Ok(identifier())
    );
    assert_eq!(
        check(m, &ctx("demo", Some("write"))),
        Err(caveat_error(
            "demo_capabilities",
            "capability write is not among read"
        ))
    );
}

#[test]
fn narrowing_valid_until_is_accepted_and_the_last_decides() {
    let m = narrowed(
        &[
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", VALID_UNTIL),
        ],
        &[Caveat::valid_until("demo", NOW + 10)],
    );
    assert_eq!(check(m.clone(), &ctx("demo", None)), Ok(identifier()));
    let later = VerifyContext {
        now_unix: NOW + 10,
        ..ctx("demo", None)
    };
    assert_eq!(check(m, &later), Err(VerifyError::Expired));
}

#[test]
fn widening_services_is_refused() {
    let m = narrowed(
        &[Caveat::services(["demo"])],
        &[Caveat::services(["demo", "weather"])],
    );
    let widened = Err(caveat_error(
        "services",
        "service weather was not allowed by an earlier caveat",
    ));
    assert_eq!(check(m.clone(), &ctx("weather", None)), widened);
    assert_eq!(check(m, &ctx("demo", None)), widened);
}

#[test]
fn widening_capabilities_is_refused() {
    let m = narrowed(
        &[
            Caveat::services(["demo"]),
            Caveat::capabilities("demo", ["read"]),
        ],
        &[Caveat::capabilities("demo", ["read", "write"])],
    );
    assert_eq!(
        check(m, &ctx("demo", Some("read"))),
        Err(caveat_error(
            "demo_capabilities",
            "capability write was not allowed by an earlier caveat"
        ))
    );
}

#[test]
fn widening_valid_until_is_refused() {
    let m = narrowed(
        &[
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", VALID_UNTIL),
        ],
        &[Caveat::valid_until("demo", VALID_UNTIL + 1)],
    );
    assert_eq!(
        check(m, &ctx("demo", None)),
        Err(caveat_error(
            "demo_valid_until",
            "1767229201 is later than the earlier caveat's 1767229200"
        ))
    );
}

#[test]
fn unknown_caveats_are_ignored() {
    let m = narrowed(
        &[Caveat::services(["demo", "weather"])],
        &[
            Caveat::new("color", "blue"),
            // Another service's conditions do not concern this request.
            Caveat::valid_until("weather", 1),
            Caveat::capabilities("weather", ["none"]),
        ],
    );
    assert_eq!(check(m, &ctx("demo", None)), Ok(identifier()));
}

#[test]
fn a_route_naming_a_capability_refuses_a_token_that_names_none() {
    // Minted for a route of the same service without a capability: it
    // must not open the service's capability routes.
    let m = narrowed(&[Caveat::services(["demo"])], &[]);
    assert_eq!(
        check(m.clone(), &ctx("demo", Some("write"))),
        Err(caveat_error(
            "demo_capabilities",
            "the route needs capability write; the token names none"
        ))
    );
    assert_eq!(check(m, &ctx("demo", None)), Ok(identifier()));
}

#[test]
fn wrong_preimage_is_refused() {
    let c = Credential {
        preimage: Preimage([0x12; 32]),
        ..credential(Scheme::L402, fixture())
    };
    assert_eq!(
        verify(&root(), &c, &ctx("demo", None)),
        Err(VerifyError::PreimageMismatch)
    );
}

#[test]
fn wrong_root_key_is_refused() {
    let c = credential(Scheme::L402, fixture());
    assert_eq!(
        verify(&RootKey([0x43; 32]), &c, &ctx("demo", None)),
        Err(VerifyError::Signature)
    );
}

/// The V2 binary format written out independently of the crate, to build
/// tampered macaroons: location, identifier, first-party caveats, signature.
fn v2(location: &[u8], id: &[u8], caveats: &[&[u8]], sig: &[u8]) -> Macaroon {
    fn field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
        out.push(tag);
        let mut n = data.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(data);
    }
    let mut out = vec![2];
    field(&mut out, 1, location);
    field(&mut out, 2, id);
    out.push(0);
    for c in caveats {
        field(&mut out, 2, c);
        out.push(0);
    }
    out.push(0);
    field(&mut out, 6, sig);
    Macaroon::from_bytes(&out).unwrap()
}

fn signature_of(m: &Macaroon) -> Vec<u8> {
    let bytes = m.to_bytes();
    bytes[bytes.len() - 32..].to_vec()
}

#[test]
fn independent_encoder_agrees_with_to_bytes() {
    let m = fixture();
    let rebuilt = v2(
        b"lsat",
        &identifier().to_bytes(),
        &[b"services=demo:0", b"demo_valid_until=1767229200"],
        &signature_of(&m),
    );
    assert_eq!(rebuilt.to_bytes(), m.to_bytes());
    assert_eq!(check(rebuilt, &ctx("demo", None)), Ok(identifier()));
}

#[test]
fn tampered_macaroons_are_refused() {
    let sig = signature_of(&fixture());
    let id = identifier().to_bytes();
    let services: &[u8] = b"services=demo:0";
    let until: &[u8] = b"demo_valid_until=1767229200";
    // The expiry caveat removed, signature kept.
    let removed = v2(b"lsat", &id, &[services], &sig);
    // A caveat added without re-signing.
    let added = v2(b"lsat", &id, &[services, until, b"color=blue"], &sig);
    // A caveat changed: a wider service list.
    let changed = v2(b"lsat", &id, &[b"services=demo:0,weather:0", until], &sig);
    // One signature bit flipped.
    let mut flipped_sig = sig.clone();
    flipped_sig[31] ^= 1;
    let flipped = v2(b"lsat", &id, &[services, until], &flipped_sig);
    // Another token id under the same signature.
    let mut other_id = id;
    other_id[65] ^= 1;
    let other = v2(b"lsat", &other_id, &[services, until], &sig);
    for (name, m) in [
        ("caveat removed", removed),
        ("caveat added", added),
        ("caveat changed", changed),
        ("signature flipped", flipped),
        ("identifier changed", other),
    ] {
        assert_eq!(
            check(m, &ctx("demo", None)),
            Err(VerifyError::Signature),
            "{name}"
        );
    }
}

#[test]
fn bad_identifiers_are_refused() {
    let sig = signature_of(&fixture());
    let short = v2(b"lsat", &[0; 10], &[b"services=demo:0"], &sig);
    assert_eq!(
        check(short, &ctx("demo", None)),
        Err(VerifyError::Identifier(IdentifierError::BadLength(10)))
    );
    let mut v1 = identifier().to_bytes();
    v1[1] = 1;
    let v1 = v2(b"lsat", &v1, &[b"services=demo:0"], &sig);
    assert_eq!(
        check(v1, &ctx("demo", None)),
        Err(VerifyError::Identifier(IdentifierError::UnknownVersion(1)))
    );
}
