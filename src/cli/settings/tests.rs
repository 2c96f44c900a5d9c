//! The settings' own tests.

use super::*;
use std::collections::HashMap;

fn resolve_with(
    text: Option<&str>,
    env: &[(&str, &str)],
    flags: &Overrides,
) -> (Result<Settings, SettingsError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // No text: no file at all (`/dev/null`, as an operator names none).
    let path = match text {
        Some(t) => {
            let path = dir.path().join("config.toml");
            std::fs::write(&path, t).unwrap();
            path
        }
        None => PathBuf::from("/dev/null"),
    };
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.get(k).cloned();
    (Settings::resolve(Some(&path), &lookup, flags), dir)
}

#[test]
fn a_named_file_that_does_not_exist_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    let err = Settings::resolve(Some(&path), &|_| None, &Overrides::default()).unwrap_err();
    assert!(matches!(err, SettingsError::Missing { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "the config file {} (from flag --config) does not exist",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn defaults_come_from_the_client_constants() {
    let (s, _d) = resolve_with(None, &[], &Overrides::default());
    let s = s.unwrap();
    assert_eq!(s.max_cost_sats.value, 1000);
    assert_eq!(s.max_fee_sats.value, 10);
    assert_eq!(s.budget_sats.value, 5000);
    assert_eq!(s.payments_per_minute.value, 20);
    assert_eq!(s.session.value, "default");
    assert_eq!(s.budget_sats.source, Source::Default);
    assert!(s.payer().is_none());
    let c = s.client_config();
    assert_eq!(c.max_cost_msat, DEFAULT_MAX_COST_MSAT);
    assert!(c.allowed_origins.is_empty());
}

#[test]
fn flags_beat_env_beat_file() {
    let text = "budget_sats = 100\nmax_fee_sats = 7\nsession = \"file\"\n";
    let flags = Overrides {
        session: Some("flag".into()),
        ..Default::default()
    };
    let (s, d) = resolve_with(
        Some(text),
        &[("L402_BUDGET_SATS", "200"), ("L402_SESSION", "env")],
        &flags,
    );
    let s = s.unwrap();
    assert_eq!(s.session.value, "flag");
    assert_eq!(s.session.source, Source::Flag("--session"));
    assert_eq!(s.budget_sats.value, 200);
    assert_eq!(s.budget_sats.source, Source::Env("L402_BUDGET_SATS"));
    assert_eq!(s.max_fee_sats.value, 7);
    assert_eq!(
        s.max_fee_sats.source,
        Source::File {
            path: d.path().join("config.toml"),
            line: 2
        }
    );
}

#[test]
fn unknown_key_is_an_error_with_its_line() {
    let (s, _d) = resolve_with(
        Some("budget_sats = 1\n\nbudget = 5\n"),
        &[],
        &Overrides::default(),
    );
    match s {
        Err(SettingsError::Parse { line, message, .. }) => {
            assert_eq!(line, 3);
            assert!(message.contains("unknown field `budget`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_type_and_bad_env_are_sentences() {
    let (s, _d) = resolve_with(Some("budget_sats = \"lots\"\n"), &[], &Overrides::default());
    assert!(
        matches!(s, Err(SettingsError::Parse { line: 1, .. })),
        "{s:?}"
    );
    let (s, _d) = resolve_with(None, &[("L402_MAX_FEE_SATS", "ten")], &Overrides::default());
    let e = s.unwrap_err().to_string();
    assert_eq!(
        e,
        "the environment variable L402_MAX_FEE_SATS=\"ten\" is not a whole number of sats"
    );
    let (s, _d) = resolve_with(
        None,
        &[("L402_PAYMENTS_PER_MINUTE", "0")],
        &Overrides::default(),
    );
    assert!(s.unwrap_err().to_string().contains("at least 1"));
}

#[test]
fn dev_node_is_the_payer_and_an_allowed_origin() {
    let flags = Overrides {
        dev_node: Some("http://127.0.0.1:8402".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    let s = s.unwrap();
    assert_eq!(
        s.payer(),
        Some(PayerChoice::Dev {
            node: "http://127.0.0.1:8402".parse().unwrap()
        })
    );
    assert_eq!(
        s.client_config().allowed_origins,
        vec!["http://127.0.0.1:8402".to_string()]
    );
    let bad = Overrides {
        dev_node: Some("ftp://x".into()),
        ..Default::default()
    };
    assert!(resolve_with(None, &[], &bad).0.is_err());
}

#[test]
fn bools_sats_ranges_and_relative_data_dir() {
    let (s, d) = resolve_with(
        Some("allow_private = true\ndata_dir = \"state\"\n"),
        &[("L402_ALLOW_PRIVATE", "off")],
        &Overrides::default(),
    );
    let s = s.unwrap();
    assert!(!s.allow_private.value);
    assert_eq!(s.data_dir.value, d.path().join("state"));
    assert_eq!(s.store_path(), d.path().join("state").join(STORE_FILE));
    let (s, _d) = resolve_with(
        Some("budget_sats = 9999999999999999\n"),
        &[],
        &Overrides::default(),
    );
    assert!(s.unwrap_err().to_string().contains("21 million"));
}

const MACAROON_HEX: &str = "0201036c6e640258030a10b1d4a3f0e2c49e1d7cd4d7e9b8c6a5f41201301a160a0761646472657373120472656164120577726974651a130a04696e666f120472656164120577726974651a170a08696e766f69636573120472656164120577726974651a210a086d616361726f6f6e120867656e6572617465120472656164120577726974651a160a076d657373616765120472656164120577726974651a170a086f6666636861696e120472656164120577726974651a160a076f6e636861696e120472656164120577726974651a140a057065657273120472656164120577726974651a180a067369676e6572120867656e657261746512047265616400000620d2a4";

fn lnd_flags() -> Overrides {
    Overrides {
        lnd_host: Some("127.0.0.1:10009".into()),
        lnd_tls_cert: Some("/etc/lnd/tls.cert".into()),
        lnd_macaroon: Some(MACAROON_HEX.into()),
        network: Some("regtest".into()),
        ..Default::default()
    }
}

#[test]
fn lnd_from_flags_is_the_payer_and_its_macaroon_is_never_shown() {
    let (s, _d) = resolve_with(None, &[], &lnd_flags());
    let s = s.unwrap();
    let Some(PayerChoice::Lnd(lnd)) = s.payer() else {
        panic!("{:?}", s.payer())
    };
    assert_eq!(lnd.host.to_string(), "127.0.0.1:10009");
    assert_eq!(lnd.network, Some(Network::Regtest));
    assert_eq!(lnd.macaroon.as_str(), MACAROON_HEX);
    assert_eq!(s.lnd_macaroon.source, Source::Flag("--lnd-macaroon"));
    // Neither Debug nor config show's rows nor the payer's JSON quote it.
    let shown = format!(
        "{s:?} {:?} {:?} {}",
        lnd_flags(),
        s.rows(),
        s.payer().map(|p| p.to_json()).unwrap_or_default()
    );
    assert!(!shown.contains(&MACAROON_HEX[..24]), "{shown}");
    let rows = s.rows();
    let row = |k: &str| rows.iter().find(|r| r.0 == k).unwrap().1.clone();
    assert_eq!(row("lnd_macaroon"), "inline (not shown)");
    assert_eq!(row("lnd_tls_cert"), "/etc/lnd/tls.cert (no such file)");
    assert_eq!(row("lnd_host"), "127.0.0.1:10009");
    assert_eq!(row("network"), "regtest");
}

#[test]
fn lnd_from_env_and_file_with_sources_and_relative_paths() {
    let text =
        "lnd_host = \"node.example.com\"\nlnd_tls_cert = \"tls.cert\"\nnetwork = \"mainnet\"\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.cert"), "x").unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let env = |k: &str| match k {
        "L402_LND_MACAROON" => Some(MACAROON_HEX.to_string()),
        "L402_NETWORK" => Some("testnet".to_string()),
        _ => None,
    };
    let s = Settings::resolve(Some(&path), &env, &Overrides::default()).unwrap();
    let Some(PayerChoice::Lnd(lnd)) = s.payer() else {
        panic!()
    };
    assert_eq!(lnd.host.to_string(), "node.example.com:10009");
    assert_eq!(
        lnd.tls_cert.as_str(),
        dir.path().join("tls.cert").display().to_string()
    );
    assert_eq!(lnd.network, Some(Network::Testnet));
    assert_eq!(s.network.source, Source::Env("L402_NETWORK"));
    assert_eq!(s.lnd_host.source, Source::File { path, line: 1 });
    assert_eq!(s.lnd_macaroon.source, Source::Env("L402_LND_MACAROON"));
}

#[test]
fn dev_node_and_lnd_together_is_an_error_naming_both() {
    let flags = Overrides {
        dev_node: Some("http://127.0.0.1:8402".into()),
        ..lnd_flags()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    assert_eq!(
        s.unwrap_err().to_string(),
        "2 payers are configured: a dev node (dev_node, flag --dev-node), an lnd node \
         (lnd_host, flag --lnd-host); the payer must be one of them: remove the others"
    );
    let (s, _d) = resolve_with(
        None,
        &[("L402_DEV_NODE", "http://127.0.0.1:8402")],
        &lnd_flags(),
    );
    assert!(s.unwrap_err().to_string().contains("env L402_DEV_NODE"));
}

#[test]
fn lnd_needs_every_part_and_a_stated_network() {
    let flags = Overrides {
        network: None,
        ..lnd_flags()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    let e = s.unwrap_err().to_string();
    assert!(
        e.starts_with("an lnd node is configured (lnd_host, flag --lnd-host) but no network is"),
        "{e}"
    );
    let flags = Overrides {
        lnd_macaroon: None,
        ..lnd_flags()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    let e = s.unwrap_err().to_string();
    assert!(
        e.starts_with("lnd_host is set (flag --lnd-host) but lnd_macaroon is not"),
        "{e}"
    );
    let (s, _d) = resolve_with(
        None,
        &[("L402_LND_TLS_CERT", "/x/tls.cert")],
        &Overrides::default(),
    );
    let e = s.unwrap_err().to_string();
    assert!(
        e.starts_with("lnd_tls_cert is set (env L402_LND_TLS_CERT) but lnd_host is not"),
        "{e}"
    );
    let (s, _d) = resolve_with(None, &[("L402_NETWORK", "bitcoinz")], &Overrides::default());
    assert!(s.unwrap_err().to_string().contains("is not a network"));
    let flags = Overrides {
        lnd_host: Some("http://x:1".into()),
        ..lnd_flags()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    assert!(
        s.unwrap_err()
            .to_string()
            .starts_with("lnd_host is unusable")
    );
}

#[test]
fn the_dev_node_is_regtest_only() {
    let flags = Overrides {
        dev_node: Some("http://127.0.0.1:8402".into()),
        network: Some("mainnet".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    assert!(
        s.unwrap_err()
            .to_string()
            .starts_with("the dev node pays only regtest invoices")
    );
    let flags = Overrides {
        network: Some("regtest".into()),
        ..flags
    };
    assert!(resolve_with(None, &[], &flags).0.is_ok());
}

#[test]
fn the_default_file_parses_and_sets_nothing() {
    let (s, _d) = resolve_with(Some(&default_file_text()), &[], &Overrides::default());
    let s = s.unwrap();
    assert!(s.config_file_exists);
    assert!(s.rows().iter().all(|(_, _, src)| **src == Source::Default));
}

#[test]
fn each_setting_is_declared_once_with_its_names_and_help() {
    let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.meta().key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), SETTINGS.len());
    let mut flags: Vec<_> = SETTINGS.iter().filter_map(|s| s.meta().flag).collect();
    let n = flags.len();
    flags.dedup_by_key(|f| f.name);
    assert_eq!(flags.len(), n);
    for s in SETTINGS {
        let m = s.meta();
        assert_eq!(m.env, format!("L402_{}", m.key.to_uppercase()), "{}", m.key);
        assert!(m.help().ends_with('.'), "{}: {:?}", m.key, m.help());
        assert!(m.flag.is_none_or(|f| f.name.starts_with("--")), "{}", m.key);
        // Something for config init to show, commented out.
        assert!(
            s.default_text().is_some() || m.example.is_some(),
            "{}",
            m.key
        );
    }
    let rows = resolve_with(None, &[], &Overrides::default()).0.unwrap();
    let shown: Vec<_> = rows.rows().into_iter().map(|r| r.0).collect();
    let declared: Vec<_> = SETTINGS.iter().map(|s| s.meta().key).collect();
    assert_eq!(shown, declared);
}

#[test]
fn the_template_has_every_setting_with_its_variable_and_flag() {
    let text = default_file_text();
    for s in SETTINGS {
        let m = s.meta();
        assert!(text.contains(&format!("\n# {} = ", m.key)), "{}", m.key);
        assert!(text.contains(m.env), "{}", m.env);
        if let Some(flag) = m.flag {
            assert!(text.contains(flag.name), "{}", flag.name);
        }
    }
    assert!(text.contains("# max_cost_sats = 1000\n"), "{text}");
    assert!(text.contains("# session = \"default\"\n"), "{text}");
    let joined = text.replace("\n# ", " ");
    assert!(joined.contains("flag serve --server-budget"), "{text}");
}

#[test]
fn a_flag_is_parsed_and_checked_as_the_environment_is_and_names_itself() {
    let flags = Overrides {
        budget_sats: Some("ten".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    assert_eq!(
        s.unwrap_err().to_string(),
        "budget_sats is not a whole number of sats (flag --budget)"
    );
    let flags = Overrides {
        request_timeout_secs: None,
        max_fee_sats: Some("99999999999999999".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[], &flags);
    assert_eq!(
        s.unwrap_err().to_string(),
        "max_fee_sats is 99999999999999999 sats, more than 21 million bitcoin (flag --max-fee)"
    );
    let (s, _d) = resolve_with(
        None,
        &[("L402_REQUEST_TIMEOUT_SECS", "0")],
        &Overrides::default(),
    );
    assert_eq!(
        s.unwrap_err().to_string(),
        "request_timeout_secs must be at least 1 (env L402_REQUEST_TIMEOUT_SECS)"
    );
    // A switch's flag turns it on over the environment's "off".
    let flags = Overrides {
        allow_private: Some("true".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[("L402_ALLOW_PRIVATE", "off")], &flags);
    let s = s.unwrap();
    assert!(s.allow_private.value);
    assert_eq!(s.allow_private.source, Source::Flag("--allow-private"));
}

#[test]
fn a_file_value_of_the_wrong_type_or_range_names_its_line() {
    let (s, d) = resolve_with(
        Some("session = \"a\"\nallow_private = \"yes\"\n"),
        &[],
        &Overrides::default(),
    );
    match s {
        Err(SettingsError::Parse { line, message, .. }) => {
            assert_eq!(line, 2);
            assert_eq!(
                message,
                "allow_private must be true or false, not a TOML string"
            );
        }
        other => panic!("{other:?}"),
    }
    drop(d);
    let (s, d) = resolve_with(Some("\nmax_fee_sats = -1\n"), &[], &Overrides::default());
    assert_eq!(
        s.unwrap_err().to_string(),
        format!(
            "max_fee_sats is not a whole number of sats (file {}:2)",
            d.path().join("config.toml").display()
        )
    );
}

#[test]
fn a_secret_is_never_quoted_in_an_error_nor_in_the_flags_debug() {
    let secret = "not-hex-nor-base64-but-secret";
    let (s, _d) = resolve_with(
        None,
        &[("L402_LND_MACAROON", secret), ("L402_NETWORK", "regtest")],
        &Overrides::default(),
    );
    let e = s.unwrap_err().to_string();
    assert!(!e.contains(secret), "{e}");
    assert!(e.contains("env L402_LND_MACAROON"), "{e}");
    let flags = Overrides {
        lnd_macaroon: Some(secret.into()),
        session: Some("shown".into()),
        ..Default::default()
    };
    let debug = format!("{flags:?}");
    assert!(
        !debug.contains(secret) && debug.contains("shown"),
        "{debug}"
    );
    assert!(
        debug.contains("\"lnd_macaroon\": \"<not shown>\""),
        "{debug}"
    );
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    client: SettingFlags<ClientSet>,
    #[command(flatten)]
    serve: SettingFlags<ServeSet>,
}

#[test]
fn the_flags_are_made_from_the_declarations() {
    use clap::{CommandFactory, Parser};
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "x",
        "--budget",
        "7",
        "--allow-private",
        "--max-cost",
        "3",
        "--lnd-macaroon",
        "secret",
    ])
    .unwrap();
    let o = cli.client.overrides().and(&cli.serve.overrides());
    assert_eq!(o.budget_sats.as_deref(), Some("7"));
    assert_eq!(o.allow_private.as_deref(), Some("true"));
    assert_eq!(o.max_cost_sats.as_deref(), Some("3"));
    assert_eq!(o.server_budget_sats, None);
    assert!(!format!("{cli:?}").contains("secret"));
    // --max-cost is serve's alone; no flag for the body cap.
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("--budget <SATS>"), "{help}");
    assert!(
        help.contains("[env: L402_BUDGET_SATS] [default: 5000]"),
        "{help}"
    );
    assert!(!help.contains("max-body"), "{help}");
    let client_only = SettingFlags::<ClientSet>::specs()
        .map(|(s, _)| s.meta().key)
        .collect::<Vec<_>>();
    assert!(!client_only.contains(&"max_cost_sats"));
    assert!(!client_only.contains(&"server_budget_sats"));
    let store: Vec<_> = SettingFlags::<StoreSet>::specs()
        .map(|(s, _)| s.meta().key)
        .collect();
    assert_eq!(store, ["data_dir"]);
}

/// The README's settings table, where it starts and ends (in bytes).
fn readme_settings_table(readme: &str) -> std::ops::Range<usize> {
    const SECTION: &str = "### The client (`fetch`, `preview`, `tokens`, `spend`, `config`)";
    let section = readme
        .find(SECTION)
        .expect("the README's client settings section");
    let start = section + readme[section..].find("\n| file key").expect("its table") + 1;
    let len: usize = readme[start..]
        .split_inclusive('\n')
        .take_while(|l| l.starts_with('|'))
        .map(str::len)
        .sum();
    start..start + len
}

/// The README's table is the declarations' (`L402_BLESS_README=1 cargo
/// test --bin l402-mcp settings` rewrites it after a change).
#[test]
fn the_readme_settings_table_is_the_declarations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = readme_settings_table(&readme);
    let expected = readme_table();
    if readme[table.clone()] != expected && std::env::var_os("L402_BLESS_README").is_some() {
        let mut blessed = readme;
        blessed.replace_range(table, &expected);
        std::fs::write(&path, blessed).unwrap();
        return;
    }
    assert_eq!(
        readme[table].to_string(),
        expected,
        "README.md's settings table differs from the declarations in src/cli/settings.rs; \
         run `L402_BLESS_README=1 cargo test --bin l402-mcp settings` to rewrite it"
    );
}

const NWC_SECRET: &str = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";

fn nwc_text() -> String {
    format!(
        "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4\
         ?relay=wss%3A%2F%2Frelay.example.com&secret={NWC_SECRET}"
    )
}

#[test]
fn a_wallet_from_the_environment_is_the_payer_and_its_secret_is_never_shown() {
    let uri = nwc_text();
    let (s, _d) = resolve_with(None, &[("L402_NWC_URI", &uri)], &Overrides::default());
    let s = s.unwrap();
    let Some(PayerChoice::Nwc {
        uri: source,
        network,
    }) = s.payer()
    else {
        panic!("{:?}", s.payer())
    };
    assert_eq!(network, None);
    let NwcSource::Uri(parsed) = &source else {
        panic!("{source:?}")
    };
    assert_eq!(
        parsed.wallet_pubkey(),
        "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
    );
    let choice = s.payer().unwrap();
    let shown = [
        format!("{:?}", s),
        format!("{:?}", s.rows()),
        choice.describe(),
        choice.to_json().to_string(),
    ];
    for text in shown {
        assert!(!text.contains(NWC_SECRET), "{text}");
        assert!(!text.contains(&NWC_SECRET[..16]), "{text}");
    }
    assert!(
        choice.describe().contains("b889ff5b"),
        "{}",
        choice.describe()
    );
    assert!(choice.to_json().to_string().contains("relay.example.com"));
}

#[test]
fn a_bad_wallet_string_is_an_error_that_does_not_quote_it() {
    let bad = format!("nostr+walletconnect://nothex?relay=wss%3A%2F%2Fr&secret={NWC_SECRET}");
    let (s, _d) = resolve_with(None, &[("L402_NWC_URI", &bad)], &Overrides::default());
    let e = s.unwrap_err().to_string();
    assert!(e.contains("L402_NWC_URI"), "{e}");
    assert!(e.contains("not valid"), "{e}");
    assert!(!e.contains(NWC_SECRET), "{e}");
}

#[test]
fn a_wallet_and_another_payer_together_is_an_error_naming_both() {
    let uri = nwc_text();
    let flags = Overrides {
        dev_node: Some("http://127.0.0.1:8402".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[("L402_NWC_URI", &uri)], &flags);
    let e = s.unwrap_err().to_string();
    assert!(e.contains("a dev node (dev_node, flag --dev-node)"), "{e}");
    assert!(e.contains("a wallet (nwc_uri, env L402_NWC_URI)"), "{e}");
    assert!(!e.contains(NWC_SECRET), "{e}");
    let flags = Overrides {
        nwc_file: Some("/tmp/nwc.uri".into()),
        ..Default::default()
    };
    let (s, _d) = resolve_with(None, &[("L402_NWC_URI", &uri)], &flags);
    assert!(
        s.unwrap_err()
            .to_string()
            .contains("a wallet file (nwc_file, flag --nwc-file)")
    );
}

#[test]
fn a_wallet_file_is_read_relative_to_the_config_file_and_never_quoted() {
    let (s, d) = resolve_with(
        Some("nwc_file = \"nwc.uri\"\nnetwork = \"regtest\"\n"),
        &[],
        &Overrides::default(),
    );
    let s = s.unwrap();
    let file = d.path().join("nwc.uri");
    let Some(PayerChoice::Nwc {
        uri: source,
        network,
    }) = s.payer()
    else {
        panic!("{:?}", s.payer())
    };
    assert_eq!(network, Some(Network::Regtest));
    assert_eq!(source, NwcSource::File(file.clone()));
    // Missing: the error names the file.
    let e = source.load().unwrap_err();
    assert!(e.contains("nwc.uri") && e.contains("cannot read"), "{e}");
    // Not a connection string: named, not quoted.
    std::fs::write(&file, format!("garbage {NWC_SECRET}\n")).unwrap();
    let e = source.load().unwrap_err();
    assert!(e.contains("does not hold a connection string"), "{e}");
    assert!(!e.contains(NWC_SECRET), "{e}");
    // Good, with a trailing newline as `echo > file` leaves it.
    std::fs::write(&file, format!("{}\n", nwc_text())).unwrap();
    let uri = source.load().unwrap();
    assert_eq!(uri.relays(), vec!["wss://relay.example.com".to_string()]);
    assert!(!source.describe().contains(NWC_SECRET));
    assert!(
        source.describe().contains("nwc.uri"),
        "{}",
        source.describe()
    );
}

#[test]
fn agents_tables_are_read_with_their_token_sources_and_limits() {
    let text = "budget_sats = 1000\n\n[agents.alice]\ntoken_file = \"alice.token\"\nbudget_sats = 300\n\
                approve_above_sats = 50\n\n[agents.bob]\ntoken_env = \"BOB_TOKEN\"\n";
    let (s, d) = resolve_with(Some(text), &[], &Overrides::default());
    let s = s.unwrap();
    assert_eq!(
        s.budget_sats.value, 1000,
        "settings before the tables still apply"
    );
    assert_eq!(s.agents.len(), 2);
    let alice = &s.agents[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(
        alice.token,
        agents::TokenSource::File(d.path().join("alice.token")),
        "relative to the config file"
    );
    assert_eq!(
        (alice.budget_sats, alice.approve_above_sats),
        (Some(300), Some(50))
    );
    assert_eq!(alice.line, 3);
    let bob = &s.agents[1];
    assert_eq!(bob.token, agents::TokenSource::Env("BOB_TOKEN".into()));
    assert_eq!(bob.budget_sats, None, "the server's budget");
    let env = |k: &str| (k == "BOB_TOKEN").then(|| " t0ken ".to_string());
    assert_eq!(bob.load_token(&env).unwrap(), "t0ken");
    let missing = alice.load_token(&env).unwrap_err();
    assert!(
        missing.contains("agent \"alice\"") && missing.contains("line 3"),
        "{missing}"
    );
}

#[test]
fn a_bad_agents_table_is_a_sentence_with_its_line() {
    for (text, line, words) in [
        ("[agents.a]\nbudget_sats = 1\n", 1, "needs its bearer token"),
        ("x = 1\n", 1, "unknown field `x`"),
        (
            "\n[agents.a]\ntoken = \"secret\"\n",
            2,
            "unknown field `token`",
        ),
        (
            "[agents.a]\ntoken_env = \"A\"\ntoken_file = \"f\"\n",
            1,
            "not both",
        ),
        (
            "[agents.a]\ntoken_env = \"A\"\nbudget_sats = -1\n",
            1,
            "whole number",
        ),
        (
            "[agents.a]\ntoken_env = \"A\"\npayments_per_minute = 0\n",
            1,
            "at least 1",
        ),
    ] {
        let (s, _d) = resolve_with(Some(text), &[], &Overrides::default());
        match s {
            Err(SettingsError::Parse {
                line: l, message, ..
            }) => {
                assert_eq!(l, line, "{text:?}: {message}");
                assert!(message.contains(words), "{text:?}: {message}");
                assert!(!message.contains("secret"), "a value is quoted: {message}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}
