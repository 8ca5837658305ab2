use std::time::Duration;

use statehouse_domain::layout::TriggerKeys;
use statehouse_ports::{ActionName, Boxed, Claimed, ClaimedTrigger, PendingTrigger, TriggerId, TriggerStore};

use super::{Layer, Layered, Op};

/// The key a trigger call names: the tenant's due set (the identifier's
/// set for `cancel_all`). Idempotent: `set` (setting a trigger again only
/// moves its deadline) and `list`. Not: `cancel`, `cancel_all` (their
/// answers could lie), `claim` and `ack` (a lost claim reply holds
/// triggers until their lease ends; a repeated ack answers `false`).
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
}
