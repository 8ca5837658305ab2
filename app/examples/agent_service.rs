//! A small chat-agent service, wired the way statehouse is meant to be used:
//!
//! - `main` is the composition root: it picks the backend from a URL (the
//!   first argument, else `STATEHOUSE_URL`, else `memory://`) and builds
//!   the service from the `Statehouse` it gets; nothing below it knows
//!   which backend that is;
//! - each request runs inside `SharedState::scope`, so its handler, and the
//!   tools the handler calls (on the same task or on tasks of their own),
//!   reach the user's shared state with `SharedState::current()` instead of
//!   passing it down;
//! - the unit tests at the bottom swap in the in-memory adapter through the
//!   ports (`Ports::of(MemoryStore::new())`): no Redis, no URL.
//!
//! ```sh
//! cargo run -p statehouse --example agent_service                          # memory
//! cargo run -p statehouse --example agent_service -- redis://127.0.0.1:6379 # a real Redis
//! cargo test -p statehouse --example agent_service                         # its unit tests
//! ```
//!
//! On Redis it writes the records of users `ada` and `bob` of the tenant
//! `example-agent` (`t:{example-agent}:…`, after `STATEHOUSE_PREFIX`), and
//! deletes them at the end.

use serde::{Deserialize, Serialize};
use statehouse::{SharedState, Statehouse, StoreError, Tenant};

/// What a request can fail with: the store, or a tool's task.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a tool of the request failed: {0}")]
    Tool(#[from] tokio::task::JoinError),
}

/// What the agent keeps about a user, one field per attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
}

/// The service: one tenant's repositories, handed out by the composition
/// root. Cheap to clone; every request handler gets it.
#[derive(Debug, Clone)]
struct AgentService {
    tenant: Tenant,
}

impl AgentService {
    /// The service of tenant `tenant` over `state` (whatever backend).
    fn new(state: &Statehouse, tenant: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: state.tenant(tenant)?,
        })
    }

    /// Handles one message of `user`: binds the user's shared state to the
    /// request, then runs the handler inside it.
    async fn handle(&self, user: &str, text: &str) -> Result<String, AgentError> {
        let request = self.tenant.shared_states().for_user(user)?;
        request.scope(on_message(self.clone(), text.to_owned())).await
    }
}

/// The handler: counts the user's messages (an atomic increment on the
/// user's record), then lets the tools work through the request's shared
/// state, found with `SharedState::current()`.
async fn on_message(service: AgentService, text: String) -> Result<String, AgentError> {
    let request = SharedState::current()?;
    let user = request.user().as_str().to_owned();
    let count = service.tenant.users().increment(&user, "messages", 1).await?;
    request.set_field("request", "text", &text).await?;
    // A tool on a task of its own: `SharedState::spawn` carries the
    // binding (a plain `tokio::spawn` would not).
    let mood = SharedState::spawn(sentiment_tool()).await??;
    let name = service
        .tenant
        .users()
        .get_field::<String>(&user, "name")
        .await?
        .unwrap_or_else(|| user.clone());
    Ok(format!("{name}, message {count}: you sound {mood}"))
}

/// A tool: reads the request's text from the current shared state and
/// leaves its finding there for the other tools.
async fn sentiment_tool() -> Result<String, StoreError> {
    let request = SharedState::current()?;
    let text: String = request.get_field("request", "text").await?.unwrap_or_default();
    let mood = if text.contains("thanks") || text.contains("great") {
        "happy"
    } else if text.contains('?') {
        "curious"
    } else {
        "calm"
    };
    request.set_field("request", "mood", &mood).await?;
    Ok(mood.to_owned())
}

/// The composition root.
#[tokio::main]
async fn main() -> Result<(), AgentError> {
    let state = match std::env::args().nth(1) {
        Some(url) => Statehouse::connect(&url).await?,
        None => Statehouse::from_env().await?,
    };
    println!("agent service on {} ({})", state.settings(), state.backend());
    let service = AgentService::new(&state, "example-agent")?;
    service
        .tenant
        .users()
        .upsert("ada", &Profile { name: "Ada".into() })
        .await?;
    for (user, text) in [
        ("ada", "how do I export my data?"),
        ("ada", "thanks, that was great"),
        ("bob", "hello"),
    ] {
        println!("{user}: {text}");
        println!("  agent: {}", service.handle(user, text).await?);
    }
    // Leave nothing behind: the records of this example's users.
    for user in ["ada", "bob"] {
        service.tenant.shared_states().clear(user).await?;
        service.tenant.users().delete(user).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use statehouse::{ErrorKind, Ports, Statehouse};
    use statehouse_memory::MemoryStore;

    use super::*;

    /// The service over the in-memory adapter, injected through the ports.
    fn service() -> AgentService {
        let state = Statehouse::from_ports(Ports::of(MemoryStore::new()));
        AgentService::new(&state, "acme").expect("a valid tenant")
    }

    #[tokio::test]
    async fn a_message_is_counted_and_the_tools_meet_in_the_shared_state() {
        let service = service();
        let users = service.tenant.users();
        users
            .upsert("ada", &Profile { name: "Ada".into() })
            .await
            .unwrap();

        let reply = service.handle("ada", "thanks!").await.unwrap();
        assert_eq!(reply, "Ada, message 1: you sound happy");
        let reply = service.handle("ada", "and exports?").await.unwrap();
        assert_eq!(reply, "Ada, message 2: you sound curious");

        // What the tool left in ada's shared state, and nobody else's.
        let states = service.tenant.shared_states();
        let mood: Option<String> = states.get_field("ada", "request", "mood").await.unwrap();
        assert_eq!(mood.as_deref(), Some("curious"));
        assert_eq!(users.get_field::<i64>("ada", "messages").await.unwrap(), Some(2));
        assert!(states.list("bob").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_handler_outside_a_request_fails_with_an_error_not_a_panic() {
        match on_message(service(), "hi".into()).await {
            Err(AgentError::Store(error)) => assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}"),
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }
}
