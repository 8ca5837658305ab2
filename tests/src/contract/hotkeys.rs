//! Contract: concurrent updates of one key from one store are combined
//! (`Combiner`, ports) into rounds that behave exactly like the updates
//! run one after another: every closure that counted saw the value the
//! previous one left, a closure that errors or keeps affects only its
//! caller, and a cancelled caller takes only its own closure with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use statehouse::Update;

use crate::contract::Backend;

/// Checks that `(input, output)` pairs form one chain from nothing:
/// `None -> 1`, `1 -> 2`, ..., each link once, ending at `last`.
fn assert_one_chain(pairs: &[(Option<u64>, u64)], last: u64) {
    let mut links: BTreeMap<u64, u64> = BTreeMap::new();
    for &(input, output) in pairs {
        let from = input.unwrap_or(0);
        assert_eq!(output, from + 1, "a closure's output is its input plus one");
        assert!(
            links.insert(from, output).is_none(),
            "two committed closures saw the same value {from}"
        );
    }
    assert_eq!(links.len() as u64, last, "one link per committed update");
    assert_eq!(
        links.keys().copied().collect::<Vec<_>>(),
        (0..last).collect::<Vec<_>>()
    );
}

pub async fn sixteen_tasks_updating_one_key_form_one_chain(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 500;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let docs = backend.docs();
        tasks.spawn(async move {
            let mut pairs = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                let mut seen = None;
                let out = docs
                    .update("hot", |n: Option<u64>| {
                        seen = n;
                        Update::Set(n.unwrap_or(0) + 1)
                    })
                    .await
                    .unwrap()
                    .unwrap();
                pairs.push((seen, out));
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_one_chain(&pairs, TASKS * EACH);
    assert_eq!(
        backend.docs().get::<u64>("hot").await.unwrap(),
        Some(TASKS * EACH)
    );
}

#[derive(Debug, PartialEq)]
struct Refused(u64);

impl From<statehouse::StoreError> for Refused {
    fn from(error: statehouse::StoreError) -> Self {
        panic!("unexpected store error: {error}")
    }
}

pub async fn an_erroring_or_keeping_closure_affects_only_its_caller(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let docs = backend.docs();
        tasks.spawn(async move {
            let mut pairs = Vec::new();
            for round in 0..EACH {
                match (task + round) % 4 {
                    // Refuses: nothing written, its own error back.
                    0 => {
                        let mut seen = None;
                        let result = docs
                            .try_update("mixed", |n: Option<u64>| {
                                seen = n;
                                Err::<Update<u64>, _>(Refused(n.unwrap_or(0)))
                            })
                            .await;
                        assert_eq!(result, Err(Refused(seen.unwrap_or(0))));
                    }
                    // Keeps: answers the value it saw, writes nothing.
                    1 => {
                        let mut seen = None;
                        let kept = docs
                            .update("mixed", |n: Option<u64>| {
                                seen = n;
                                Update::Keep
                            })
                            .await
                            .unwrap();
                        assert_eq!(kept, seen, "a keeping closure gets the value it saw");
                    }
                    _ => {
                        let mut seen = None;
                        let out = docs
                            .update("mixed", |n: Option<u64>| {
                                seen = n;
                                Update::Set(n.unwrap_or(0) + 1)
                            })
                            .await
                            .unwrap()
                            .unwrap();
                        pairs.push((seen, out));
                    }
                }
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let increments = pairs.len() as u64;
    assert_eq!(increments, TASKS * EACH / 2);
    assert_one_chain(&pairs, increments);
    assert_eq!(
        backend.docs().get::<u64>("mixed").await.unwrap(),
        Some(increments)
    );
}

/// `+1` updates of one key through a handle of one task's own, so that one
/// test runs on every family that combines.
trait Counting: Send + 'static {
    /// One `+1` update: the count its closure saw (last) and the one it
    /// wrote.
    fn count(
        &mut self,
    ) -> impl Future<Output = Result<(Option<u64>, u64), statehouse::StoreError>> + Send + '_;
}

/// Documents' `update` of one key.
struct CountingDocument(statehouse::Documents, &'static str);

impl Counting for CountingDocument {
    async fn count(&mut self) -> Result<(Option<u64>, u64), statehouse::StoreError> {
        let mut seen = None;
        let out = self
            .0
            .update(self.1, |n: Option<u64>| {
                seen = n;
                Update::Set(n.unwrap_or(0) + 1)
            })
            .await?;
        Ok((seen, out.expect("a value after Set")))
    }
}

impl Counting for statehouse::Synced<crate::contract::synced::Hits> {
    async fn count(&mut self) -> Result<(Option<u64>, u64), statehouse::StoreError> {
        let mut seen = None;
        let out = self
            .modify(|hits| {
                seen = Some(hits.n);
                hits.n += 1;
            })
            .await?
            .n;
        Ok((seen, out))
    }
}

/// Each of `handles` counts 100 times in a task of its own, a third of the
/// calls cancelled at once or a little later (before, during or after
/// their round). Cancelling another caller, the one leading a round
/// included, fails no update; no caller hangs; the count `stored` then
/// reads holds every completed update once and a cancelled one at most
/// once, and no two completed updates saw the same count.
async fn cancelled_callers_take_only_their_own_closures<C: Counting>(
    handles: Vec<C>,
    stored: impl Future<Output = u64>,
) {
    const EACH: u64 = 100;
    let tasks_count = handles.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (task, mut handle) in (0..).zip(handles) {
        let done = done.clone();
        tasks.spawn(async move {
            let mut pairs = Vec::new();
            let mut cancelled = 0u64;
            for round in 0..EACH {
                let wait = if (task + round) % 3 == 0 {
                    Duration::from_micros(50 * (round % 7))
                } else {
                    // Never cancelled: a bound the test does not reach.
                    Duration::from_secs(3600)
                };
                match tokio::time::timeout(wait, handle.count()).await {
                    Ok(Ok(pair)) => pairs.push(pair),
                    Ok(Err(error)) => panic!("an update that was not cancelled failed: {error}"),
                    Err(_) => cancelled += 1,
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (pairs, cancelled)
        });
    }
    let mut pairs = Vec::new();
    let mut cancelled = 0;
    for (mine, dropped) in tasks.join_all().await {
        pairs.extend(mine);
        cancelled += dropped;
    }
    assert_eq!(done.load(Ordering::Relaxed), tasks_count * EACH, "no caller hung");
    let stored = stored.await;
    let completed = pairs.len() as u64;
    // Every completed update counted once; a cancelled one at most once.
    assert!(
        stored >= completed && stored <= completed + cancelled,
        "stored {stored}, completed {completed}, cancelled {cancelled}"
    );
    let mut links = BTreeMap::new();
    for (input, output) in pairs {
        assert_eq!(output, input.unwrap_or(0) + 1);
        assert!(
            links.insert(input.unwrap_or(0), output).is_none(),
            "two updates saw {input:?}"
        );
    }
}

pub async fn a_cancelled_caller_takes_only_its_own_closure(backend: Backend) {
    let handles = (0..16)
        .map(|_| CountingDocument(backend.docs(), "cancel"))
        .collect();
    let stored = async { backend.docs().get::<u64>("cancel").await.unwrap().unwrap_or(0) };
    cancelled_callers_take_only_their_own_closures(handles, stored).await;
}

/// The same with synced models' `modify`, in each layout.
pub async fn a_cancelled_modify_takes_only_its_own_change(backend: Backend) {
    use statehouse::ModelLayout;

    for (layout, id) in [
        (ModelLayout::Hash, "cancel-hash"),
        (ModelLayout::Json, "cancel-json"),
    ] {
        let models = backend.models();
        let mut handles = Vec::new();
        for _ in 0..16 {
            handles.push(hits(&models, layout, id).await);
        }
        let stored = async { hits(&models, layout, id).await.value().n };
        cancelled_callers_take_only_their_own_closures(handles, stored).await;
    }
}

/// A round held open: the closure of the update leading it blocks its
/// worker (`block_in_place`) until the gate opens, so that updates of the
/// same key queue behind it, in a known order.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<std::sync::atomic::AtomicBool>,
    release: Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    /// In the holding update's closure: blocks until [`open`](Self::open).
    fn hold(&self) {
        self.entered.store(true, Ordering::SeqCst);
        tokio::task::block_in_place(|| {
            while !self.release.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
        });
    }

    /// Waits until the holding closure runs.
    async fn entered(&self) {
        while !self.entered.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn open(&self) {
        self.release.store(true, Ordering::SeqCst);
    }
}

/// Polls each of `updates` once, in this order: each joins its key's next
/// batch, behind the round a [`Gate`] holds.
async fn queue<F: std::future::Future + Unpin>(mut updates: Vec<&mut F>) {
    std::future::poll_fn(|cx| {
        for update in &mut updates {
            let update = std::pin::Pin::new(&mut **update);
            assert!(update.poll(cx).is_pending(), "queued behind the gate");
        }
        std::task::Poll::Ready(())
    })
    .await;
}

/// Polls the updates still in `slots`, each's result into its place in
/// `results`; ready once all are done.
fn poll_each<F: std::future::Future + Unpin>(
    cx: &mut std::task::Context<'_>,
    slots: &mut [Option<F>],
    results: &mut [Option<F::Output>],
) -> std::task::Poll<()> {
    for (slot, result) in slots.iter_mut().zip(results.iter_mut()) {
        if let Some(update) = slot
            && let std::task::Poll::Ready(done) = std::pin::Pin::new(update).poll(cx)
        {
            *result = Some(done);
            *slot = None;
        }
    }
    if slots.iter().all(Option::is_none) {
        std::task::Poll::Ready(())
    } else {
        std::task::Poll::Pending
    }
}

/// One update of the hot key through `docs`, boxed so the test can poll it
/// by hand and drop it at a chosen point.
type Polled<'d> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<u64>, statehouse::StoreError>> + Send + 'd>,
>;

/// A `+1` update of the hot key `leader` by caller `who`; the `last`
/// caller's closure sets `last_ran`.
fn increment<'d>(
    docs: &'d statehouse::Documents,
    who: u64,
    last: u64,
    last_ran: &Arc<std::sync::atomic::AtomicBool>,
) -> Polled<'d> {
    let last_ran = last_ran.clone();
    Box::pin(docs.update("leader", move |n: Option<u64>| {
        if who == last {
            last_ran.store(true, Ordering::SeqCst);
        }
        Update::Set(n.unwrap_or(0) + 1)
    }))
}

/// Cancelling the caller that leads a round while its write is out changes
/// no other caller's outcome: the round's write completes and every other
/// member gets exactly the value its own closure made, the leader's
/// increment included (a cancelled leader's batch still completes).
///
/// A first update holds its round (its closure blocks its worker, through
/// `block_in_place`) until the leader and 15 members have queued behind it,
/// so the next batch's leader and order are known; the test polls those 16
/// updates itself and drops the leader's in the poll that sends its write
/// (the first after the last member's closure ran). On memory the write is
/// one step under the keyspace lock, so that poll already completes it.
pub async fn a_leader_cancelled_during_its_write_changes_no_other_outcome(backend: Backend) {
    use std::sync::atomic::AtomicBool;
    use std::task::Poll;

    const MEMBERS: u64 = 15;
    const TRIALS: u64 = 5;
    let docs = backend.docs();
    let mut cancelled_in_write = 0;
    for trial in 0..TRIALS {
        let gate = Gate::default();
        let holding = {
            let (docs, gate) = (docs.clone(), gate.clone());
            tokio::spawn(async move {
                docs.update("leader", move |n: Option<u64>| {
                    gate.hold();
                    Update::Set(n.unwrap_or(0) + 1)
                })
                .await
            })
        };
        gate.entered().await;
        // The gate's round runs: these 16 queue, in this order, in the next
        // batch, which the first leads.
        let last_ran = Arc::new(AtomicBool::new(false));
        let mut leader = Some(increment(&docs, 0, MEMBERS, &last_ran));
        let mut members: Vec<Option<Polled<'_>>> = (1..=MEMBERS)
            .map(|who| Some(increment(&docs, who, MEMBERS, &last_ran)))
            .collect();
        queue(leader.iter_mut().chain(members.iter_mut().flatten()).collect()).await;
        gate.open();
        let gated = holding.await.unwrap().unwrap().unwrap();

        let mut leader_result = None;
        let mut results: Vec<Option<Result<Option<u64>, statehouse::StoreError>>> =
            (0..MEMBERS).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            if let Some(update) = leader.as_mut() {
                // The last member's closure ran: this poll sends the write.
                let writes_now = last_ran.load(Ordering::SeqCst);
                match update.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        leader_result = Some(result);
                        leader = None;
                    }
                    Poll::Pending if writes_now => {
                        leader = None;
                        cancelled_in_write += 1;
                    }
                    Poll::Pending => {}
                }
            }
            poll_each(cx, &mut members, &mut results)
        })
        .await;

        // The leader's increment is in (gated + 1), then each member's in
        // arrival order.
        if let Some(result) = leader_result {
            assert_eq!(result.unwrap(), Some(gated + 1), "trial {trial}: the leader");
        }
        for (who, result) in (1..=MEMBERS).zip(results) {
            let result = result.expect("every member finished");
            assert_eq!(
                result.unwrap_or_else(|error| panic!("trial {trial}: member {who}: {error}")),
                Some(gated + 1 + who),
                "trial {trial}: member {who}"
            );
        }
        let stored = docs.get::<u64>("leader").await.unwrap();
        assert_eq!(
            stored,
            Some(gated + 1 + MEMBERS),
            "trial {trial}: the exact count"
        );
    }
    // Elsewhere than on memory, the leader's write is out when its caller
    // is dropped (it completes in a task of its own).
    if !backend.name.starts_with("memory") {
        assert!(cancelled_in_write > 0, "no leader was cancelled during its write");
    }
}

/// 16 tasks × 100 `+1` updates of one subject property (`update_property`,
/// what `set_with` runs): the closures' inputs and outputs form one chain
/// and the property ends exact.
pub async fn sixteen_tasks_updating_one_property_form_one_chain(backend: Backend) {
    use serde_json::{Value, json};
    use statehouse_ports::{PropertyKind, PropertyName, SubjectName, SubjectSpace};

    const TASKS: u64 = 16;
    const EACH: u64 = 100;
    let space = SubjectSpace::default();
    let subject = SubjectName::new("hot").unwrap();
    let name = PropertyName::new("count").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, space, subject, name) = (
            backend.subjects.clone(),
            space.clone(),
            subject.clone(),
            name.clone(),
        );
        tasks.spawn(async move {
            let mut pairs = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                let mut seen = None;
                let updated = store
                    .update_property(&space, &subject, PropertyKind::Default, &name, &mut |old| {
                        seen = old.and_then(Value::as_u64);
                        Ok(json!(seen.unwrap_or(0) + 1))
                    })
                    .await
                    .unwrap();
                assert_eq!(updated.old.as_ref().and_then(Value::as_u64), seen);
                pairs.push((seen, updated.new.as_u64().unwrap()));
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_one_chain(&pairs, TASKS * EACH);
    let stored = backend
        .subjects
        .get_property(&space, &subject, PropertyKind::Default, &name)
        .await
        .unwrap();
    assert_eq!(stored, Some(json!(TASKS * EACH)));
}

/// 16 tasks × 100 `+1` updates of one tenant field (`update_field`, what
/// `modify_field` runs): one chain, exact.
pub async fn sixteen_tasks_updating_one_tenant_field_form_one_chain(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 100;
    let users = backend.tenant("acme").users();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let users = users.clone();
        tasks.spawn(async move {
            let mut pairs = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                let mut seen = None;
                let out: u64 = users
                    .modify_field("u1", "count", |n: Option<u64>| {
                        seen = n;
                        n.unwrap_or(0) + 1
                    })
                    .await
                    .unwrap();
                pairs.push((seen, out));
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_one_chain(&pairs, TASKS * EACH);
    assert_eq!(
        users.get_field::<u64>("u1", "count").await.unwrap(),
        Some(TASKS * EACH)
    );
}

/// Model `id` of [`Hits`](crate::contract::synced::Hits) through `models`,
/// a new model in `layout`.
async fn hits(
    models: &statehouse::Models,
    layout: statehouse::ModelLayout,
    id: &str,
) -> statehouse::Synced<crate::contract::synced::Hits> {
    statehouse::Synced::builder()
        .layout(layout)
        .load_from(models, id)
        .await
        .unwrap()
}

/// A `+1` modify: the count its closure saw (last) and the one it wrote.
async fn count_hit(hits: &mut statehouse::Synced<crate::contract::synced::Hits>) -> (Option<u64>, u64) {
    let mut seen = None;
    let out = hits
        .modify(|hits| {
            seen = Some(hits.n);
            hits.n += 1;
        })
        .await
        .unwrap()
        .n;
    (seen, out)
}

/// 16 tasks × 100 `+1` modifies of one synced model (each task its own
/// handle, new models in `layout`): the closures' inputs and outputs form
/// one chain, the model ends exact and stays in its layout.
async fn sixteen_tasks_modifying_one_model(backend: &Backend, layout: statehouse::ModelLayout) {
    use crate::contract::synced::{Hits, load, stored};

    const TASKS: u64 = 16;
    const EACH: u64 = 100;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let models = backend.models();
        tasks.spawn(async move {
            let mut hits = hits(&models, layout, "hot").await;
            let mut pairs = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                pairs.push(count_hit(&mut hits).await);
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_one_chain(&pairs, TASKS * EACH);
    assert_eq!(load::<Hits>(backend, layout, "hot").await.value().n, TASKS * EACH);
    let stored = stored(backend, "PageHits:hot").await;
    assert_eq!(stored.map(|model| model.layout()), Some(layout));
}

pub async fn sixteen_tasks_modifying_one_hash_model_form_one_chain(backend: Backend) {
    sixteen_tasks_modifying_one_model(&backend, statehouse::ModelLayout::Hash).await;
}

pub async fn sixteen_tasks_modifying_one_json_model_form_one_chain(backend: Backend) {
    sixteen_tasks_modifying_one_model(&backend, statehouse::ModelLayout::Json).await;
}

/// 16 tasks modifying one model in each layout, a quarter of the calls
/// refusing (their own error back, nothing written), a quarter keeping
/// (the model they saw back): the increments still form one chain.
pub async fn an_erroring_or_keeping_modify_affects_only_its_caller(backend: Backend) {
    use crate::contract::synced::{Hits, load};
    use statehouse::ModelLayout;

    const TASKS: u64 = 16;
    const EACH: u64 = 60;
    for (layout, id) in [
        (ModelLayout::Hash, "mixed-hash"),
        (ModelLayout::Json, "mixed-json"),
    ] {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let models = backend.models();
            tasks.spawn(async move {
                let mut hits = hits(&models, layout, id).await;
                let mut pairs = Vec::new();
                for round in 0..EACH {
                    let mut seen = None;
                    match (task + round) % 4 {
                        0 => {
                            let result = hits
                                .try_modify(|hits| {
                                    seen = Some(hits.n);
                                    Err(Refused(hits.n))
                                })
                                .await
                                .map(|hits| hits.n);
                            assert_eq!(result, Err(Refused(seen.unwrap())));
                        }
                        1 => {
                            let kept = hits.modify(|hits| seen = Some(hits.n)).await.unwrap().n;
                            assert_eq!(Some(kept), seen, "a keeping modify gets the model it saw");
                        }
                        _ => pairs.push(count_hit(&mut hits).await),
                    }
                }
                pairs
            });
        }
        let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
        let increments = pairs.len() as u64;
        assert_eq!(increments, TASKS * EACH / 2);
        assert_one_chain(&pairs, increments);
        assert_eq!(load::<Hits>(&backend, layout, id).await.value().n, increments);
    }
}

/// One `update_model` of the port, boxed so the test can poll it by hand.
type PolledModel<'u> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<statehouse::ModelUpdated, statehouse::StoreError>>
            + Send
            + 'u,
    >,
>;

/// One update queued behind a round: its decision, the model it must see
/// and the layout it must answer (or the kind of its error).
type Step = (
    Result<statehouse::ModelWrite, &'static str>,
    Option<statehouse::StoredModel>,
    Result<Option<statehouse::ModelLayout>, statehouse::ErrorKind>,
);

/// Runs `steps` as updates of `key` (the layout `expected` tried first)
/// queued in this order behind a round that holds the key, so that with
/// combining they form one batch in this order, and checks what each saw
/// (last) and answered.
async fn queued_behind_a_round(
    backend: &Backend,
    key: &statehouse::Key,
    expected: statehouse::ModelLayout,
    steps: Vec<Step>,
) {
    use statehouse::{ModelWrite, RetryPolicy, StoredModel};

    let policy = RetryPolicy::default();
    let gate = Gate::default();
    let holding = {
        let (synced, key, gate) = (backend.synced.clone(), key.clone(), gate.clone());
        tokio::spawn(async move {
            let mut hold = |_: Option<&StoredModel>| {
                gate.hold();
                Ok(ModelWrite::Keep)
            };
            synced.update_model(&key, expected, policy, &mut hold).await
        })
    };
    gate.entered().await;
    let mut seen: Vec<Option<StoredModel>> = steps.iter().map(|_| None).collect();
    let mut closures: Vec<_> = steps
        .iter()
        .zip(seen.iter_mut())
        .map(|((decision, _, _), seen)| {
            move |stored: Option<&StoredModel>| {
                *seen = stored.cloned();
                decision.clone().map_err(Into::into)
            }
        })
        .collect();
    let mut updates: Vec<Option<PolledModel<'_>>> = closures
        .iter_mut()
        .map(|f| Some(Box::pin(backend.synced.update_model(key, expected, policy, f)) as PolledModel<'_>))
        .collect();
    queue(updates.iter_mut().flatten().collect()).await;
    gate.open();
    holding.await.unwrap().unwrap();
    let mut results: Vec<Option<Result<_, _>>> = updates.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| poll_each(cx, &mut updates, &mut results)).await;
    drop(updates);
    drop(closures);
    for (at, ((_, wanted_seen, wanted), (seen, result))) in
        steps.iter().zip(seen.iter().zip(results)).enumerate()
    {
        assert_eq!(seen, wanted_seen, "update {at} saw");
        let answered = result
            .expect("every update finished")
            .map(|updated| updated.layout)
            .map_err(|error| error.kind());
        assert_eq!(&answered, wanted, "update {at} answered");
    }
}

/// Updates of one model queued behind a round (one batch, with combining)
/// that move it through both layouts, refuse, delete and re-create it: each
/// sees what the one before left and gets its own outcome, and the key ends
/// as one update after another would leave it, its expiry included (kept by
/// field and document writes, gone with a deletion).
pub async fn a_batch_of_model_writes_ends_as_one_after_another(backend: Backend) {
    use statehouse::{ErrorKind, Key, KeyTtl, ModelLayout, ModelWrite, StoredModel};
    use statehouse_domain::Ttl;

    let hash = |pairs: &[(&str, &str)]| {
        Some(StoredModel::Hash(
            pairs
                .iter()
                .map(|(field, value)| ((*field).to_owned(), value.as_bytes().to_vec()))
                .collect(),
        ))
    };
    let fields = |set: &[(&str, &str)], delete: &[&str]| {
        Ok(ModelWrite::Fields {
            set: set
                .iter()
                .map(|(field, value)| ((*field).to_owned(), value.as_bytes().to_vec()))
                .collect(),
            delete: delete.iter().map(|field| (*field).to_owned()).collect(),
        })
    };
    let json = |text: &str| Some(StoredModel::Json(text.as_bytes().to_vec()));
    let document = |text: &str| Ok(ModelWrite::Json(text.as_bytes().to_vec()));
    let (as_hash, as_json) = (Ok(Some(ModelLayout::Hash)), Ok(Some(ModelLayout::Json)));
    let ttl = Ttl::new(Duration::from_secs(3600)).unwrap();

    // From a hash with an expiry, through a document, refused field
    // writes, a deletion, to a new hash.
    let key = Key::new("Batch:mixed").unwrap();
    let start = [("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())];
    backend.synced.write_fields(&key, &start, &[]).await.unwrap();
    assert!(backend.documents.expire(&key, ttl).await.unwrap());
    let steps: Vec<Step> = vec![
        (
            fields(&[("c", "3")], &["a"]),
            hash(&[("a", "1"), ("b", "2")]),
            as_hash,
        ),
        (document(r#"{"x":1}"#), hash(&[("b", "2"), ("c", "3")]), as_json),
        (
            fields(&[("d", "4")], &[]),
            json(r#"{"x":1}"#),
            Err(ErrorKind::InvalidInput),
        ),
        (Ok(ModelWrite::Delete), json(r#"{"x":1}"#), Ok(None)),
        (fields(&[], &["zz"]), None, Ok(None)),
        (fields(&[("e", "5")], &[]), None, as_hash),
        (Ok(ModelWrite::Keep), hash(&[("e", "5")]), as_hash),
    ];
    queued_behind_a_round(&backend, &key, ModelLayout::Hash, steps).await;
    assert_eq!(
        backend.synced.load_model(&key).await.unwrap(),
        hash(&[("e", "5")])
    );
    assert_eq!(backend.documents.ttl(&key).await.unwrap(), KeyTtl::Persistent);

    // A document with an expiry, the updates trying the hash layout first
    // (the round reads the key again as what it holds): the closure that
    // errors changes nothing, the expiry stays.
    let key = Key::new("Batch:document").unwrap();
    let options = statehouse::SetOptions::new().ttl(ttl);
    backend.documents.set(&key, br#"{"n":1}"#, options).await.unwrap();
    let steps: Vec<Step> = vec![
        (Ok(ModelWrite::Keep), json(r#"{"n":1}"#), as_json),
        (document(r#"{"n":2}"#), json(r#"{"n":1}"#), as_json),
        (Err("refused"), json(r#"{"n":2}"#), Err(ErrorKind::Aborted)),
        (document(r#"{"n":3}"#), json(r#"{"n":2}"#), as_json),
    ];
    queued_behind_a_round(&backend, &key, ModelLayout::Hash, steps).await;
    assert_eq!(backend.synced.load_model(&key).await.unwrap(), json(r#"{"n":3}"#));
    assert!(matches!(
        backend.documents.ttl(&key).await.unwrap(),
        KeyTtl::ExpiresIn(_)
    ));
}

/// 16 tasks × 50 `append_log` of one task, beside a `set_status`, in a
/// space that never retries (`RetryPolicy::no_retry`): changes of one
/// task from one store are combined, so they never conflict with each
/// other and every one succeeds at its first attempt. Each caller gets the
/// record as its own change left it (its line last), the log lengths form
/// one chain, and the log ends with every line, each writer's in order.
pub async fn sixteen_tasks_changing_one_task_never_conflict(backend: Backend) {
    use statehouse::{RetryPolicy, TaskSpace, TaskStatus};
    use statehouse_domain::{ServiceName, TaskId, TaskRecord, UserId};

    const TASKS: usize = 16;
    const EACH: usize = 50;
    let space = TaskSpace::new("hot-tasks").with_policy(RetryPolicy::no_retry());
    let id = TaskId::new("busy").unwrap();
    let record = TaskRecord::new(
        id.clone(),
        ServiceName::new("svc").unwrap(),
        UserId::new("u").unwrap(),
        chrono::Utc::now(),
    );
    backend.tasks.save(&space, record).await.unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, space, id) = (backend.tasks.clone(), space.clone(), id.clone());
        callers.spawn(async move {
            let mut lengths = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let line = format!("{t}:{i}");
                let record = store.append_log(&space, &id, &line).await.unwrap();
                assert_eq!(
                    record.log.last().map(|entry| entry.message.as_str()),
                    Some(line.as_str())
                );
                lengths.push(record.log.len());
            }
            lengths
        });
    }
    let (store, status_space, status_id) = (backend.tasks.clone(), space.clone(), id.clone());
    callers.spawn(async move {
        let record = store
            .set_status(&status_space, &status_id, TaskStatus::Running, Some("started"))
            .await
            .unwrap();
        assert_eq!(record.status, TaskStatus::Running);
        vec![record.log.len()]
    });
    let mut lengths: Vec<usize> = callers.join_all().await.into_iter().flatten().collect();
    lengths.sort_unstable();
    let all = TASKS * EACH + 1;
    assert_eq!(
        lengths,
        (1..=all).collect::<Vec<_>>(),
        "one log length per change"
    );
    let stored = backend.tasks.get(&space, &id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Running);
    assert_eq!(stored.log.len(), all);
    for t in 0..TASKS {
        let prefix = format!("{t}:");
        let mine: Vec<usize> = stored
            .log
            .iter()
            .filter_map(|entry| entry.message.strip_prefix(&prefix))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "writer {t}'s lines");
    }
}

/// Concurrent changes of one task whose index key holds another type: the
/// round's write is refused (`WrongType`, as one change alone is), every
/// caller gets the error, and nothing is written.
pub async fn a_refused_write_of_combined_task_changes_fails_every_caller(backend: Backend) {
    use statehouse::{ErrorKind, TaskSpace};
    use statehouse_domain::layout::TaskBucket;

    const CALLERS: usize = 16;
    let tasks = backend.tasks();
    tasks.create("t", "svc", "u").await.unwrap();
    let index = TaskSpace::default().keys().by_user(TaskBucket::of("t"), "u");
    backend.docs().delete(&index).await.unwrap();
    backend.plant_hash(&index).await;
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let tasks = backend.tasks();
        callers.spawn(async move { tasks.append_log("t", &format!("line {i}")).await });
    }
    for outcome in callers.join_all().await {
        let error = outcome.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    }
    let stored = tasks.get("t").await.unwrap().unwrap();
    assert!(stored.log.is_empty(), "a refused round wrote {:?}", stored.log);
}
