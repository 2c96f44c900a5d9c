//! Agents the operator declares for HTTP: each holds a bearer token of its
//! own and pays from a budget of its own, within limits of its own.
//!
//! A budget must hang on something the agent cannot mint. On stdio that is
//! the process; on HTTP at 2025-11-25 it is the MCP session, which any
//! local client can open, so all sessions share the server pool. The
//! 2026-07-28 revision has no sessions at all, so on HTTP the budget
//! belongs to the bearer token: the guard finds which agent's token a
//! request carries and marks the request with its [`Caller`]; every call of
//! that agent, on any revision and any transport, pays from that agent's
//! budget (ledger session `agent-<name>`, which holds across restarts like
//! any named session).

use subtle::ConstantTimeEq;

use crate::client::ClientConfig;

/// One agent the operator declared.
#[derive(Clone)]
pub struct Agent {
    /// Its name: letters, digits, `-` and `_`; the ledger session is
    /// `agent-<name>`.
    pub name: String,
    /// The bearer token it sends (at least 32 characters).
    pub token: String,
    /// Its budget, msat; `None`: the server's session budget.
    pub budget_msat: Option<u64>,
    /// Largest invoice paid for one request, msat; `None`: the server's.
    pub max_cost_msat: Option<u64>,
    /// Largest routing fee per payment, msat; `None`: the server's.
    pub fee_limit_msat: Option<u64>,
    /// Payments above this need approval, msat; `None`: the server's.
    pub approve_above_msat: Option<u64>,
    /// Payments per minute; `None`: the server's.
    pub payments_per_minute: Option<u32>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("token", &"<secret>")
            .field("budget_msat", &self.budget_msat)
            .field("max_cost_msat", &self.max_cost_msat)
            .field("fee_limit_msat", &self.fee_limit_msat)
            .field("approve_above_msat", &self.approve_above_msat)
            .field("payments_per_minute", &self.payments_per_minute)
            .finish()
    }
}

impl Agent {
    /// The ledger session this agent pays from.
    pub fn session_name(&self) -> String {
        format!("agent-{}", self.name)
    }

    /// The server's limits with this agent's own in their place. The
    /// agent's session is in no server pool: its budget is the operator's
    /// word for it, and no client can open another.
    pub fn config(&self, server: &ClientConfig) -> ClientConfig {
        let mut c = server.clone();
        c.session = self.session_name();
        c.pool = None;
        if let Some(b) = self.budget_msat {
            c.session_budget_msat = b;
        }
        if let Some(m) = self.max_cost_msat {
            c.max_cost_msat = m;
        }
        if let Some(f) = self.fee_limit_msat {
            c.fee_limit_msat = f;
        }
        if self.approve_above_msat.is_some() {
            c.approve_above_msat = self.approve_above_msat;
        }
        if let Some(p) = self.payments_per_minute {
            c.payments_per_minute = p;
        }
        c
    }
}

/// Why a list of agents cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A name that cannot be a ledger session name.
    #[error(
        "agent name {0:?} is not valid: use 1 to 64 letters, digits, '-' or '_' (it names the \
         agent's budget, agent-<name>)"
    )]
    BadName(String),
    /// Two agents with one name would share a budget without saying so.
    #[error("two agents are named {0:?}; give each its own name")]
    DuplicateName(String),
    /// A token too short to be a secret.
    #[error(
        "agent {name:?}'s token has {chars} characters; use at least {min} (make one with \
         `openssl rand -hex 32`)"
    )]
    ShortToken {
        /// The agent.
        name: String,
        /// Its token's length.
        chars: usize,
        /// The least accepted.
        min: usize,
    },
    /// One token for two agents: a request could not tell whose it is.
    #[error("agents {0:?} and {1:?} have the same token; give each its own")]
    SharedToken(String, String),
}

/// The shortest bearer token accepted, in characters.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Checks names and tokens: valid, distinct, long enough.
pub fn validate(agents: &[Agent]) -> Result<(), AgentError> {
    for (i, a) in agents.iter().enumerate() {
        let name_ok = !a.name.is_empty()
            && a.name.len() <= 64
            && a.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(AgentError::BadName(a.name.clone()));
        }
        let chars = a.token.trim().chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(AgentError::ShortToken {
                name: a.name.clone(),
                chars,
                min: MIN_TOKEN_CHARS,
            });
        }
        for b in &agents[..i] {
            if b.name == a.name {
                return Err(AgentError::DuplicateName(a.name.clone()));
            }
            if bool::from(b.token.as_bytes().ct_eq(a.token.as_bytes())) {
                return Err(AgentError::SharedToken(b.name.clone(), a.name.clone()));
            }
        }
    }
    Ok(())
}

/// Who sent an HTTP request, as the guard found from its bearer token; set
/// on the request's extensions before any MCP handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The operator's own token, or no token on loopback: the server's
    /// budgets (one per MCP session at 2025-11-25, one for the server at
    /// 2026-07-28).
    Server,
    /// The agent at this index of the server's list.
    Agent(usize),
}

/// Which of `agents` (or the operator's `token`) `given` is, comparing
/// every token in constant time and without stopping at a match.
pub(crate) fn identify(given: &str, token: Option<&str>, agents: &[Agent]) -> Option<Caller> {
    let mut found = None;
    if let Some(t) = token
        && bool::from(given.as_bytes().ct_eq(t.as_bytes()))
    {
        found = Some(Caller::Server);
    }
    for (i, a) in agents.iter().enumerate() {
        if bool::from(given.as_bytes().ct_eq(a.token.as_bytes())) {
            found = Some(Caller::Agent(i));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, token: &str) -> Agent {
        Agent {
            name: name.into(),
            token: token.into(),
            budget_msat: Some(1_000_000),
            max_cost_msat: None,
            fee_limit_msat: None,
            approve_above_msat: None,
            payments_per_minute: None,
        }
    }

    #[test]
    fn tokens_name_their_agent_and_nothing_else() {
        let a = "a".repeat(32);
        let b = "b".repeat(32);
        let op = "o".repeat(32);
        let agents = [agent("alice", &a), agent("bob", &b)];
        assert_eq!(identify(&a, Some(&op), &agents), Some(Caller::Agent(0)));
        assert_eq!(identify(&b, None, &agents), Some(Caller::Agent(1)));
        assert_eq!(identify(&op, Some(&op), &agents), Some(Caller::Server));
        assert_eq!(identify("", Some(&op), &agents), None);
        assert_eq!(identify(&a[..31], None, &agents), None);
    }

    #[test]
    fn names_and_tokens_are_checked() {
        let t = "t".repeat(32);
        assert!(validate(&[agent("ok_name-1", &t)]).is_ok());
        assert!(matches!(
            validate(&[agent("bad name", &t)]),
            Err(AgentError::BadName(_))
        ));
        assert!(matches!(
            validate(&[agent("a", "short")]),
            Err(AgentError::ShortToken { .. })
        ));
        assert!(matches!(
            validate(&[agent("a", &t), agent("a", &"u".repeat(32))]),
            Err(AgentError::DuplicateName(_))
        ));
        assert!(matches!(
            validate(&[agent("a", &t), agent("b", &t)]),
            Err(AgentError::SharedToken(..))
        ));
    }

    #[test]
    fn an_agents_limits_replace_the_servers_and_leave_the_pool() {
        let server = ClientConfig {
            pool: Some(crate::client::BudgetPool {
                name: "p".into(),
                budget_msat: 1,
            }),
            ..ClientConfig::default()
        };
        let mut a = agent("alice", &"a".repeat(32));
        a.approve_above_msat = Some(5_000);
        let c = a.config(&server);
        assert_eq!(c.session, "agent-alice");
        assert_eq!(c.session_budget_msat, 1_000_000);
        assert_eq!(c.approve_above_msat, Some(5_000));
        assert_eq!(c.max_cost_msat, server.max_cost_msat);
        assert!(c.pool.is_none());
    }
}
