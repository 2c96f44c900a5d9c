//! What the declarations say in words: `config init`'s commented file,
//! and the README's settings table (checked by a test).

use super::*;

/// The commented default config file `config init` writes: every setting,
/// its help, its variable and flag, commented out at its default.
pub fn default_file_text() -> String {
    let mut out = String::from(
        "# l402-mcp client settings.\n\
         #\n\
         # Precedence: this file, then environment variables (L402_*), then flags;\n\
         # flags win. Every setting below is commented out at its default: uncomment\n\
         # and change what you need. Amounts are in sats.\n",
    );
    for s in SETTINGS {
        let m = s.meta();
        let mut names = format!("env {}", m.env);
        if let Some(flag) = m.flag {
            names.push_str(&format!(", flag {}", flag_words(flag)));
        }
        let mut words = format!("{} ({names}).", m.help().trim_end_matches('.'));
        if let Some(doc) = m.default_doc {
            words.push_str(&format!(" Default: {doc}."));
        }
        out.push('\n');
        for line in wrap(&words, 76) {
            out.push_str(&format!("# {line}\n"));
        }
        let value = match m.example {
            Some(example) => example.to_string(),
            None => s.default_text().unwrap_or_default(),
        };
        out.push_str(&format!("# {} = {}\n", m.key, s.toml().literal(&value)));
    }
    out.push_str(
        "\n# Agents of `serve --http`: each its own bearer token (from a file or the\n\
         # environment, never written here), budget (ledger session agent-NAME) and\n\
         # limits; a limit left out is the server's. With agents declared, every HTTP\n\
         # request needs a token. Tables go after every setting above.\n\
         # [agents.research]\n\
         # token_file = \"research.token\"   # or token_env = \"RESEARCH_TOKEN\"\n\
         # budget_sats = 2000\n\
         # max_cost_sats = 100\n\
         # max_fee_sats = 10\n\
         # approve_above_sats = 500\n\
         # payments_per_minute = 6\n",
    );
    out
}

/// The flag as the docs name it: `--budget`, `serve --max-cost`.
fn flag_words(flag: Flag) -> String {
    match flag.on {
        Commands::Serve => format!("serve {}", flag.name),
        Commands::All | Commands::Client => flag.name.to_string(),
    }
}

/// `text` in lines of at most `width` characters (a longer word stands
/// alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The settings table of the README's "Configuration" section, in
/// Markdown: file key, variable, flag, default (a test keeps the README
/// equal to it).
#[cfg(test)]
pub fn readme_table() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| file key | env | flag | default |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let m = s.meta();
        let key = match m.about {
            "" => format!("`{}`", m.key),
            about => format!("`{}` ({about})", m.key),
        };
        let flag = m.flag.map_or(String::new(), |f| match f.value {
            Some(value) => format!("`{} {value}`", flag_words(f)),
            None => format!("`{}`", flag_words(f)),
        });
        let default = match (m.default_doc, s.default_text()) {
            (Some(doc), _) => doc.to_string(),
            (None, Some(text)) => format!("`{text}`"),
            (None, None) => "none".to_string(),
        };
        let row = format!(
            "| {} | `{}` | {} | {} |\n",
            cell(&key),
            m.env,
            cell(&flag),
            cell(&default)
        );
        out.push_str(&row.replace("|  |", "| |"));
    }
    out
}
