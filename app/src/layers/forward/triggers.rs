use std::time::Duration;

use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_ports::{
    ActionName, Boxed, Claimed, ClaimedTrigger, DueTenants, IndexedTenant, PendingTrigger, TriggerId,
    TriggerStore,
};

use super::{Layer, Layered, Op};

/// The key a trigger call names: the tenant's due set (a round's: its
/// first tenant's; the identifier's
/// set for `cancel_all`; the first shard of the due index for
/// `take_due` and `indexed`). Idempotent: `indexed` (a read), `set` (setting a trigger again only moves its
/// deadline; its index mark counts once more, which a claim settles) and
/// `list`. Not: `cancel`, `cancel_all` (their answers could lie), `claim`,
/// `claim_indexed`, `claim_round`, `take_due` (a lost reply holds triggers or tenants
/// until their lease ends) and `ack`, `ack_indexed`, `ack_round` (a repeated ack
/// answers `false`).
impl<L: Layer, S: TriggerStore> TriggerStore for Layered<L, S> {
    fn set<'s, 't, 'a, 'i, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        action: &'a ActionName,
        id: &'i TriggerId,
        delay: Duration,
    ) -> Boxed<'f, ()>
    where
        's: 'f,
        't: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("trigger_set", triggers.due()), move || {
                self.inner.set(triggers, action, id, delay)
            })
    }

    fn cancel<'s, 't, 'a, 'i, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        action: &'a ActionName,
        id: &'i TriggerId,
    ) -> Boxed<'f, bool>
    where
        's: 'f,
        't: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("trigger_cancel", triggers.due()),
            self.inner.cancel(triggers, action, id),
        )
    }

    fn cancel_all<'s, 't, 'i, 'f>(&'s self, triggers: &'t TriggerKeys, id: &'i TriggerId) -> Boxed<'f, usize>
    where
        's: 'f,
        't: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::lazy("trigger_cancel_all", || triggers.of_id(id.as_str())),
            self.inner.cancel_all(triggers, id),
        )
    }

    fn list<'s, 't, 'f>(&'s self, triggers: &'t TriggerKeys, only_due: bool) -> Boxed<'f, Vec<PendingTrigger>>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("trigger_list", triggers.due()), move || {
                self.inner.list(triggers, only_due)
            })
    }

    fn claim<'s, 't, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Boxed<'f, Claimed>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("trigger_claim", triggers.due()),
            self.inner.claim(triggers, max, lease),
        )
    }

    fn ack<'s, 't, 'c, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        trigger: &'c ClaimedTrigger,
    ) -> Boxed<'f, bool>
    where
        's: 'f,
        't: 'f,
        'c: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("trigger_ack", triggers.due()),
            self.inner.ack(triggers, trigger),
        )
    }

    fn take_due<'s, 'x, 'f>(
        &'s self,
        index: &'x TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Boxed<'f, DueTenants>
    where
        's: 'f,
        'x: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::lazy("trigger_take", || {
                index
                    .shards()
                    .first()
                    .map(|shard| shard.tenants().to_owned())
                    .unwrap_or_default()
            }),
            self.inner.take_due(index, max, lease),
        )
    }

    fn indexed<'s, 'x, 'f>(&'s self, index: &'x TriggerIndex, limit: usize) -> Boxed<'f, Vec<IndexedTenant>>
    where
        's: 'f,
        'x: 'f,
        Self: 'f,
    {
        let key = index.shards().first().map_or("", |shard| shard.tenants());
        self.layer
            .around_idempotent(Op::new("trigger_indexed", key), move || {
                self.inner.indexed(index, limit)
            })
    }

    fn claim_indexed<'s, 't, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Boxed<'f, Claimed>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("trigger_claim", triggers.due()),
            self.inner.claim_indexed(triggers, max, lease),
        )
    }

    fn ack_indexed<'s, 't, 'c, 'f>(
        &'s self,
        triggers: &'t TriggerKeys,
        handled: &'c [ClaimedTrigger],
    ) -> Boxed<'f, usize>
    where
        's: 'f,
        't: 'f,
        'c: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("trigger_ack", triggers.due()),
            self.inner.ack_indexed(triggers, handled),
        )
    }

    fn claim_round<'s, 't, 'f>(
        &'s self,
        tenants: &'t [TriggerKeys],
        max: usize,
        lease: Duration,
    ) -> Boxed<'f, Vec<Claimed>>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        let key = tenants.first().map_or("", TriggerKeys::due);
        self.layer.around(
            Op::new("trigger_claim", key),
            self.inner.claim_round(tenants, max, lease),
        )
    }

    fn ack_round<'s, 'a, 'f>(&'s self, acks: &'a [(TriggerKeys, Vec<ClaimedTrigger>)]) -> Boxed<'f, usize>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        let key = acks.first().map_or("", |(triggers, _)| triggers.due());
        self.layer
            .around(Op::new("trigger_ack", key), self.inner.ack_round(acks))
    }
}
