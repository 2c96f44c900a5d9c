//! `WWW-Authenticate` values come from any server an agent fetches: the
//! parser must never panic, and what it accepts must print and parse back
//! to the same challenge.
#![no_main]

use l402_mcp::l402::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // One value, and the same split into several header values.
    let values: Vec<&str> = text.split('\n').collect();
    if let Ok(all) = Challenge::parse_all(values) {
        for c in all {
            let printed = c.to_string();
            let again: Challenge = printed.parse().expect("a printed challenge parses");
            assert_eq!(again, c);
        }
    }
});
