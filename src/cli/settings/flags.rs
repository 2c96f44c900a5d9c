//! The settings' flags, as clap arguments made from the declarations.

use std::fmt;
use std::marker::PhantomData;

use super::*;

/// Which settings' flags a command takes, and how its `--help` words them.
pub trait FlagSet: Default + Clone {
    /// The flags also apply to the command's subcommands.
    const GLOBAL: bool = false;
    /// Whether the set has this setting's flag.
    fn has(meta: &Meta) -> bool;
    /// The flag's help, when the command says it its own way (the gateway
    /// invoices where the client pays).
    fn help(_meta: &Meta) -> Option<&'static str> {
        None
    }
}

/// The flags of the commands that pay: fetch, preview, spend, config
/// show, serve.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSet;

impl FlagSet for ClientSet {
    fn has(meta: &Meta) -> bool {
        meta.flag
            .is_some_and(|f| matches!(f.on, Commands::All | Commands::Client))
    }
}

/// The flags of `serve` alone (with [`ClientSet`]'s).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeSet;

impl FlagSet for ServeSet {
    fn has(meta: &Meta) -> bool {
        meta.flag.is_some_and(|f| f.on == Commands::Serve)
    }
}

/// The flags of commands that only read the store (`tokens`), for its
/// subcommands too.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSet;

impl FlagSet for StoreSet {
    const GLOBAL: bool = true;
    fn has(meta: &Meta) -> bool {
        meta.flag.is_some_and(|f| f.on == Commands::All)
    }
}

/// The flags of the settings in `S`, made from their declarations: each
/// takes text, which [`Settings::resolve`] parses as it parses the
/// environment's.
#[derive(Clone, Default)]
pub struct SettingFlags<S> {
    /// What was given: (key, text), in declaration order.
    given: Vec<(&'static str, String)>,
    set: PhantomData<S>,
}

impl<S> SettingFlags<S> {
    /// What was given, as overrides.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = Overrides::default();
        for (key, value) in &self.given {
            overrides.set(key, value.clone());
        }
        overrides
    }
}

impl<S> fmt::Debug for SettingFlags<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.overrides().fmt(f)
    }
}

impl<S: FlagSet> SettingFlags<S> {
    pub(super) fn specs() -> impl Iterator<Item = (&'static dyn Declared, Flag)> {
        SETTINGS
            .iter()
            .copied()
            .filter(|s| S::has(s.meta()))
            .filter_map(|s| Some((s, s.meta().flag?)))
    }
}

impl<S: FlagSet> clap::Args for SettingFlags<S> {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for (s, flag) in Self::specs() {
            let m = s.meta();
            let mut help = S::help(m).map_or_else(|| m.help(), str::to_string);
            help.truncate(help.trim_end_matches('.').len());
            help.push_str(&format!(" [env: {}]", m.env));
            // A command that words the flag its own way says its own default.
            let default = m
                .default_doc
                .map(str::to_string)
                .or_else(|| s.default_text());
            if let Some(default) = default.filter(|_| S::help(m).is_none()) {
                help.push_str(&format!(" [default: {default}]"));
            }
            let arg = clap::Arg::new(m.key)
                .long(flag.name.trim_start_matches('-'))
                .help(help)
                .global(S::GLOBAL);
            cmd = cmd.arg(match flag.value {
                Some(value) => arg.value_name(value).action(clap::ArgAction::Set),
                None => arg.action(clap::ArgAction::SetTrue),
            });
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<S: FlagSet> clap::FromArgMatches for SettingFlags<S> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = SettingFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for (s, flag) in Self::specs() {
            let m = s.meta();
            let given = match flag.value {
                // A switch can only turn its setting on.
                None => matches
                    .try_get_one::<bool>(m.key)
                    .ok()
                    .flatten()
                    .filter(|on| **on)
                    .map(|_| "true".to_string()),
                Some(_) => matches.try_get_one::<String>(m.key).ok().flatten().cloned(),
            };
            if let Some(value) = given {
                self.given.retain(|(key, _)| *key != m.key);
                self.given.push((m.key, value));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for s in SETTINGS {
            let key = s.meta().key;
            match self.get(key) {
                Some(_) if s.secret() => map.entry(&key, &"<not shown>"),
                Some(value) => map.entry(&key, &value),
                None => continue,
            };
        }
        map.finish()
    }
}
