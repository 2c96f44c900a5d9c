//! Where the gateway's root key comes from.
//!
//! Every token's secret is derived from one 32-byte root key, so whoever
//! holds the key verifies (and could mint) every token; replicas behind a
//! load balancer verify each other's tokens by holding the same one. Three
//! sources, the key always as 64 hex digits:
//!
//! - a file in the data directory, created (mode 0600) on first start
//!   ([`load_or_create_root_key`]): one gateway, nothing to set up;
//! - a file the operator made and gave every replica
//!   ([`load_root_key_file`]): it must exist (a replica that made its own
//!   key would refuse its peers' tokens without a word) and be readable by
//!   its owner only;
//! - the key itself in an environment variable ([`root_key_from_env`],
//!   [`ROOT_KEY_ENV`]), for platforms that hand secrets over as variables.
//!
//! No message, log line or `Debug` output ever shows the key: a refusal
//! says what is wrong with it (its length, a character that is not hex),
//! never what it is.

use std::io::Write;
use std::path::Path;

use super::GatewayError;
use crate::l402::RootKey;

/// Name of the root key file in the data directory.
pub const ROOT_KEY_FILE: &str = "gateway-root-key";

/// The environment variable that may hold the root key itself (64 hex
/// digits).
pub const ROOT_KEY_ENV: &str = "L402_GATEWAY_ROOT_KEY";

/// How to make a key, for the sentences that ask for one.
const MAKE_ONE: &str = "`openssl rand -hex 32`";

/// Reads the root key from `<data_dir>/gateway-root-key`, or creates it
/// (32 random bytes, hex, mode 0600) on first start. A key file readable by
/// others is refused, as ssh refuses a loose private key.
pub fn load_or_create_root_key(data_dir: &Path) -> Result<RootKey, GatewayError> {
    let path = data_dir.join(ROOT_KEY_FILE);
    let fail = |message: String| GatewayError::RootKey {
        path: path.clone(),
        message,
    };
    std::fs::create_dir_all(data_dir)
        .map_err(|e| fail(format!("cannot create the data directory: {e}")))?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path).map_err(fail)?;
            decode(&text).map_err(|why| {
                fail(format!(
                    "{why}; restore it from a backup, or delete it to start over (every \
                     token sold so far is then revoked)"
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = RootKey::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts
                .open(&path)
                .map_err(|e| fail(format!("cannot create: {e}")))?;
            file.write_all(format!("{}\n", hex::encode(key.0)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fail(format!("cannot write: {e}")))?;
            tracing::info!(path = %path.display(), "created a new gateway root key");
            Ok(key)
        }
        Err(e) => Err(fail(format!("cannot read: {e}"))),
    }
}

/// Reads the root key from `path`, a file the operator made (64 hex
/// digits, surrounding whitespace ignored) and readable by its owner only
/// (mode 0600 or 0400 on unix). It is never created: a missing file is an
/// error that says how to make one.
pub fn load_root_key_file(path: &Path) -> Result<RootKey, GatewayError> {
    let fail = |message: String| GatewayError::RootKey {
        path: path.to_path_buf(),
        message,
    };
    // The mode first: a loose key is refused before it is even read.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(fail(
                "is a directory; give the key file itself (64 hex digits, mode 0600)".into(),
            ));
        }
        Ok(_) => check_private(path).map_err(fail)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(format!(
                "does not exist; make the key once with `(umask 077; openssl rand -hex 32 > \
                 {})` and give every replica that same file, or check --root-key-file \
                 (L402_GATEWAY_ROOT_KEY_FILE)",
                path.display()
            )));
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => fail(format!(
            "is not text; it must hold the key as 64 hex digits (make one with {MAKE_ONE})"
        )),
        _ => fail(format!("cannot read: {e}")),
    })?;
    decode(&text).map_err(|why| {
        fail(format!(
            "{why}; it must hold the 32-byte key as 64 hex digits (make one with {MAKE_ONE})"
        ))
    })
}

/// The root key from the value of the environment variable `var` (64 hex
/// digits, surrounding whitespace ignored).
pub fn root_key_from_env(var: &str, value: &str) -> Result<RootKey, GatewayError> {
    decode(value).map_err(|why| GatewayError::RootKeyVar {
        var: var.to_string(),
        message: format!(
            "{why}; set it to the 32-byte key as 64 hex digits (make one with {MAKE_ONE})"
        ),
    })
}

/// 64 hex digits to a key; the error says what is wrong in words that
/// never quote the text.
fn decode(text: &str) -> Result<RootKey, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    let chars = text.chars().count();
    if chars != 64 {
        return Err(format!("holds {chars} characters, not 64 hex digits"));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key)
        .map_err(|_| "holds 64 characters, but not all of them are hex digits".to_string())?;
    Ok(RootKey(key))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot stat: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable by other users (mode {:o}); run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn a_private_key_file_is_read_and_its_newline_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let path = write(dir.path(), "k", &format!("{KEY}\n"), mode);
            assert_eq!(hex::encode(load_root_key_file(&path).unwrap().0), KEY);
            std::fs::remove_file(&path).unwrap();
        }
        // Upper-case hex is hex too.
        let path = write(dir.path(), "k", &KEY.to_uppercase(), 0o600);
        assert_eq!(hex::encode(load_root_key_file(&path).unwrap().0), KEY);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = write(dir.path(), "k", KEY, mode);
            let err = load_root_key_file(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "root key file {p}: is readable by other users (mode {mode:o}); run \
                     `chmod 600 {p}`",
                    p = path.display()
                )
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_malformed_key_is_a_sentence_that_never_quotes_it() {
        let dir = tempfile::tempdir().unwrap();
        let secretish = "ab".repeat(31); // 62 hex digits
        for (text, why) in [
            ("", "is empty"),
            ("\n  \n", "is empty"),
            (secretish.as_str(), "holds 62 characters, not 64 hex digits"),
            (
                &format!("{KEY}00"),
                "holds 66 characters, not 64 hex digits",
            ),
            (
                &format!("{}zz", &KEY[..62]),
                "holds 64 characters, but not all of them are hex digits",
            ),
            (
                &format!("{}é", &KEY[..63]),
                "holds 64 characters, but not all of them are hex digits",
            ),
        ] {
            let path = write(dir.path(), "k", text, 0o600);
            let err = load_root_key_file(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("root key file {}: {why}; ", path.display())),
                "{text:?}: {err}"
            );
            assert!(err.contains("openssl rand -hex 32"), "{err}");
            let env = root_key_from_env(ROOT_KEY_ENV, text)
                .unwrap_err()
                .to_string();
            assert!(
                env.starts_with(&format!("the environment variable {ROOT_KEY_ENV} {why}; ")),
                "{env}"
            );
            if text.trim().len() > 8 {
                assert!(!err.contains(text.trim()) && !env.contains(text.trim()));
                assert!(!err.contains(&text.trim()[..16]) && !env.contains(&text.trim()[..16]));
            }
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_missing_key_file_is_never_created_and_the_error_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared-key");
        let err = load_root_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("openssl rand -hex 32"), "{err}");
        assert!(err.contains("every replica"), "{err}");
        assert!(!path.exists());
        let err = load_root_key_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn the_env_key_is_the_key_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "k", KEY, 0o600);
        let from_file = load_root_key_file(&path).unwrap();
        let from_env = root_key_from_env(ROOT_KEY_ENV, &format!(" {KEY}\n")).unwrap();
        assert_eq!(from_file.0, from_env.0);
    }
}
