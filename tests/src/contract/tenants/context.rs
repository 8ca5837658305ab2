//! The task-local current shared state.

use std::sync::Arc;

use serde_json::{Value, json};
use statehouse::{ErrorKind, SharedState};

use crate::contract::Backend;

/// The current shared state: a clear error outside a scope, carried by
/// `SharedState::spawn` (not by plain `tokio::spawn`), usable from blocking
/// code; many concurrent requests of different tenants and users, through
/// nested tasks and a blocking tool, never see another's state.
pub async fn the_current_shared_state_never_leaks_between_requests(backend: Backend) {
    let error = SharedState::current().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("SharedState::scope"), "{error}");
    assert!(SharedState::spawn_blocking(|_| ()).is_err());

    let backend = Arc::new(backend);
    let mut requests = Vec::new();
    for request in 0..24u32 {
        let backend = backend.clone();
        requests.push(tokio::spawn(async move {
            let tenant = ["acme", "a:b", "*"][request as usize % 3];
            let user = format!("user-{}", request % 8);
            let owner = format!("{tenant}|{user}");
            let state = backend.tenant(tenant).shared_states().for_user(&user).unwrap();
            state
                .scope(async move {
                    let current = SharedState::current().unwrap();
                    assert_eq!(
                        (current.tenant().as_str(), current.user().as_str()),
                        (tenant, user.as_str())
                    );
                    current
                        .set(&format!("req-{request}"), &json!({"owner": owner}))
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    // A nested task carries the binding, and so does its own child.
                    let nested = SharedState::spawn(async move {
                        let inner = SharedState::spawn(async {
                            SharedState::current().map(|s| (s.tenant().clone(), s.user().clone()))
                        });
                        let here = SharedState::current().unwrap();
                        let got: Value = here.get(&format!("req-{request}")).await.unwrap().unwrap();
                        (got, inner.await.unwrap().unwrap())
                    });
                    let (got, (t, u)) = nested.await.unwrap();
                    assert_eq!(got["owner"], json!(format!("{tenant}|{user}")));
                    assert_eq!((t.as_str(), u.as_str()), (tenant, user.as_str()));
                    // Plain tokio::spawn does not carry it.
                    assert!(
                        tokio::spawn(async { SharedState::current().is_err() })
                            .await
                            .unwrap()
                    );
                    // A synchronous tool on a blocking thread.
                    let name = format!("req-{request}");
                    let tool = SharedState::spawn_blocking(move |state| {
                        let got: Value = state.get(&name).unwrap().unwrap();
                        state.set_field(&name, "tool", &"ran").unwrap();
                        (got, state.list().unwrap())
                    })
                    .unwrap();
                    let (got, listed) = tool.await.unwrap();
                    assert_eq!(got["owner"], json!(format!("{tenant}|{user}")));
                    for name in &listed {
                        let n: u32 = name.trim_start_matches("req-").parse().unwrap();
                        assert_eq!(n % 8, request % 8, "only this user's states: {listed:?}");
                        assert_eq!(n % 3, request % 3, "only this tenant's states: {listed:?}");
                    }
                    let current = SharedState::current().unwrap();
                    assert_eq!(
                        current
                            .get_field::<String>(&format!("req-{request}"), "tool")
                            .await
                            .unwrap()
                            .as_deref(),
                        Some("ran")
                    );
                })
                .await;
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    // Every state holds its own owner.
    for request in 0..24u32 {
        let tenant = ["acme", "a:b", "*"][request as usize % 3];
        let user = format!("user-{}", request % 8);
        let got: Value = backend
            .tenant(tenant)
            .shared_states()
            .get(&user, &format!("req-{request}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, json!({"owner": format!("{tenant}|{user}"), "tool": "ran"}));
    }
}
