//! Isolation between tenants and users: a property test over random nasty
//! ids, and the tenants the issue names.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use statehouse_domain::layout::TenantKeys;
use statehouse_ports::{TenantId, TenantPattern};

use crate::contract::Backend;

/// A small deterministic PRNG (xorshift64*), so the property test needs no
/// dependency and every run checks the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An id the validator allows, built from the nastiest pieces: key
    /// separators, globs, braces, backslashes, spaces, `%` escapes, unicode,
    /// and ids that are prefixes of each other.
    fn id(&mut self) -> String {
        const PIECES: [&str; 26] = [
            ":", "*", "?", "[", "]", "{", "}", "\\", " ", "%", "%3A", "%2A", "a", "b", "ab", "é", "😀",
            "{a}", "user", "state", "table:", "*:*", "\u{a0}", "-", "\u{200b}", "^",
        ];
        let len = 1 + self.below(3);
        (0..len).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
}

/// Random tuples with nasty ids: different tuples never share a key, and
/// no get, find, list or clear of one tenant or user reads, returns or
/// deletes another's data.
pub async fn isolation_holds_for_random_nasty_ids(backend: Backend) {
    let mut rng = Rng(0x5EED_1234_ABCD_0042);
    let mut tenants: Vec<String> = (0..6).map(|_| rng.id()).collect();
    tenants.extend(["*", "a:b", "a", "b", "ab", "a*", " ", "\u{a0}"].map(String::from));
    tenants.sort();
    tenants.dedup();
    let users: Vec<String> = {
        let mut users: Vec<String> = (0..5).map(|_| rng.id()).collect();
        // The empty-looking ids the validator allows, and prefixes.
        users.extend(["u", "u:x", "u*", " ", "\u{200b}", "%"].map(String::from));
        users.sort();
        users.dedup();
        users
    };
    let names: Vec<String> = {
        let mut names: Vec<String> = (0..3).map(|_| rng.id()).collect();
        names.sort();
        names.dedup();
        names
    };
    // 1. Keys: every (kind, tenant, a, b) tuple has its own key.
    let mut seen: BTreeMap<String, (String, &str, String, String)> = BTreeMap::new();
    for tenant in &tenants {
        let keys = TenantKeys::new(tenant);
        for a in users.iter().chain(&names) {
            for b in users.iter().chain(&names) {
                for (kind, key) in [
                    ("handler", keys.handler(a, b)),
                    ("table", keys.row(a, b)),
                    ("state", keys.state(a, b)),
                ] {
                    let tuple = (tenant.clone(), kind, a.clone(), b.clone());
                    if let Some(other) = seen.insert(key.clone(), tuple.clone()) {
                        panic!("{tuple:?} and {other:?} share {key}");
                    }
                }
            }
            let tuple = (tenant.clone(), "user", a.clone(), String::new());
            if let Some(other) = seen.insert(keys.user(a), tuple.clone())
                && other != tuple
            {
                panic!("{tuple:?} and {other:?} share a user key");
            }
        }
    }
    // 2. Data: each tenant's user writes a marker naming its tuple.
    let marker = |tenant: &str, user: &str, name: &str| json!({"owner": format!("{tenant}|{user}|{name}"), "flag": "x"});
    let mut written = 0;
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        for user in &users {
            t.users().upsert(user, &marker(tenant, user, "")).await.unwrap();
            for name in &names {
                t.shared_states()
                    .set(user, name, &marker(tenant, user, name))
                    .await
                    .unwrap();
                t.handler_states()
                    .set(user, name, &marker(tenant, user, name))
                    .await
                    .unwrap();
                t.tables()
                    .set(name, user, &marker(tenant, user, name))
                    .await
                    .unwrap();
                written += 3;
            }
        }
    }
    assert!(written > 100, "{written}");
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        assert_eq!(
            t.users().list().await.unwrap(),
            users,
            "users of {tenant:?} (sorted ids)"
        );
        // Below the facade: the port's SCAN of the tenant's patterns returns
        // only the tenant's own keys, each once.
        let id = TenantId::new(tenant.as_str()).unwrap();
        let head = TenantKeys::new(tenant).head().to_owned();
        let keys = backend
            .tenants
            .scan(&TenantPattern::users(&id))
            .collect()
            .await
            .unwrap();
        assert_eq!(keys.len(), users.len(), "user keys of {tenant:?}");
        assert!(keys.iter().all(|key| key.starts_with(&head)), "{keys:?}");
        let keys = backend
            .tenants
            .scan(&TenantPattern::all(&id))
            .collect()
            .await
            .unwrap();
        assert_eq!(
            keys.len(),
            users.len() * (1 + 3 * names.len()),
            "keys of {tenant:?}"
        );
        assert!(keys.iter().all(|key| key.starts_with(&head)), "{keys:?}");
        let found = t
            .users()
            .find("owner", &format!("{tenant}|{}|", users[0]))
            .await
            .unwrap();
        assert_eq!(found, [users[0].clone()], "find in {tenant:?}");
        assert_eq!(
            t.users().find("flag", &"x").await.unwrap(),
            users,
            "find in {tenant:?}"
        );
        for user in &users {
            let got: Value = t.users().get(user).await.unwrap().unwrap();
            assert_eq!(got, marker(tenant, user, ""), "user {user:?} of {tenant:?}");
            let states = t.shared_states().list(user).await.unwrap();
            assert_eq!(states, names, "states of {user:?} in {tenant:?}");
            let handlers = t.handler_states().list(user).await.unwrap();
            assert_eq!(handlers, names);
            for name in &names {
                let got: Value = t.shared_states().get(user, name).await.unwrap().unwrap();
                assert_eq!(got, marker(tenant, user, name));
                let got: Value = t.tables().get(name, user).await.unwrap().unwrap();
                assert_eq!(got, marker(tenant, user, name));
            }
        }
    }
    // 3. Clear and delete-by-pk touch only their own tenant and user.
    let (victim_tenant, victim_user) = (&tenants[0], &users[0]);
    let t = backend.tenant(victim_tenant);
    assert_eq!(
        t.shared_states().clear(victim_user).await.unwrap(),
        names.len() as u64
    );
    assert_eq!(
        t.tables().delete_pk(victim_user).await.unwrap(),
        names.len() as u64
    );
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        for user in &users {
            let victim = tenant == victim_tenant && user == victim_user;
            let states = t.shared_states().list(user).await.unwrap();
            assert_eq!(states.is_empty(), victim, "states of {user:?} in {tenant:?}");
            for name in &names {
                let row = t.tables().get::<Value>(name, user).await.unwrap();
                assert_eq!(row.is_none(), victim, "row {name:?}/{user:?} in {tenant:?}");
                let handler = t.handler_states().get::<Value>(user, name).await.unwrap();
                assert!(handler.is_some(), "handler states are never cleared here");
            }
            assert!(t.users().exists(user).await.unwrap());
        }
    }
}

/// The tenants the issue names: `*`, `a:b` beside `a` and `b`, and a tenant
/// that is a prefix of another.
pub async fn tenants_named_star_colon_and_prefix_stay_apart(backend: Backend) {
    let names = ["*", "a:b", "a", "b", "ab", "a*", "[a]", "{a}"];
    for name in names {
        let t = backend.tenant(name);
        t.users().upsert("u", &json!({"tenant": name})).await.unwrap();
        t.shared_states()
            .set("u", "s", &json!({"tenant": name}))
            .await
            .unwrap();
        t.tables().set("t", "1", &json!({"tenant": name})).await.unwrap();
    }
    for name in names {
        let t = backend.tenant(name);
        assert_eq!(t.users().list().await.unwrap(), ["u"], "{name}");
        assert_eq!(t.users().find("tenant", &name).await.unwrap(), ["u"], "{name}");
        assert_eq!(t.tables().list("t").await.unwrap(), ["1"], "{name}");
        assert_eq!(
            t.users()
                .get_field::<String>("u", "tenant")
                .await
                .unwrap()
                .as_deref(),
            Some(name)
        );
    }
    // Clearing in `*`, `a` and `a:b` leaves the others.
    for name in ["*", "a", "a:b"] {
        let t = backend.tenant(name);
        assert_eq!(t.shared_states().clear("u").await.unwrap(), 1, "{name}");
        assert_eq!(t.tables().delete_pk("1").await.unwrap(), 1, "{name}");
    }
    for name in ["b", "ab", "a*", "[a]", "{a}"] {
        let t = backend.tenant(name);
        assert_eq!(t.shared_states().list("u").await.unwrap(), ["s"], "{name}");
        assert_eq!(t.tables().list("t").await.unwrap(), ["1"], "{name}");
    }
}
