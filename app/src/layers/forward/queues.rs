use std::time::Duration;

use statehouse_domain::TenantId;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};
use statehouse_ports::{Boxed, QueueItem, QueueName, QueueStore};

use super::{Layer, Layered, Op};

/// The key a queue call names: the queue's list (the index for `queues`,
/// the service's pending set for `pending`/`remove_pending`). Idempotent:
/// the reads (`range`, `len`, `queues`, `pending`). Not: the writes (an
/// enqueue repeated after a lost reply would queue twice; a lost claim
/// reply holds items until their lease ends).
impl<L: Layer, S: QueueStore> QueueStore for Layered<L, S> {
    fn enqueue<'s, 'q, 'p, 'f>(&'s self, queue: &'q QueueKeys, payloads: &'p [Vec<u8>]) -> Boxed<'f, Vec<u64>>
    where
        's: 'f,
        'q: 'f,
        'p: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("enqueue", queue.list()),
            self.inner.enqueue(queue, payloads),
        )
    }

    fn range<'s, 'q, 'f>(
        &'s self,
        queue: &'q QueueKeys,
        start: usize,
        count: usize,
    ) -> Boxed<'f, Vec<QueueItem>>
    where
        's: 'f,
        'q: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("queue_range", queue.list()), move || {
                self.inner.range(queue, start, count)
            })
    }

    fn trim<'s, 'q, 'f>(&'s self, queue: &'q QueueKeys, count: usize) -> Boxed<'f, usize>
    where
        's: 'f,
        'q: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("queue_trim", queue.list()), self.inner.trim(queue, count))
    }

    fn len<'s, 'q, 'f>(&'s self, queue: &'q QueueKeys) -> Boxed<'f, u64>
    where
        's: 'f,
        'q: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("queue_len", queue.list()), || self.inner.len(queue))
    }

    fn queues<'s, 'i, 'f>(&'s self, index: &'i QueueIndex) -> Boxed<'f, Vec<QueueName>>
    where
        's: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("queue_list", index.key()), || self.inner.queues(index))
    }

    fn pending<'s, 'v, 'f>(&'s self, service: &'v ServiceKeys) -> Boxed<'f, Vec<String>>
    where
        's: 'f,
        'v: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("queue_pending", service.pending()), || {
                self.inner.pending(service)
            })
    }

    fn remove_pending<'s, 'v, 't, 'f>(
        &'s self,
        service: &'v ServiceKeys,
        tenant: &'t TenantId,
    ) -> Boxed<'f, bool>
    where
        's: 'f,
        'v: 'f,
        't: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("queue_remove_pending", service.pending()),
            self.inner.remove_pending(service, tenant),
        )
    }

    fn claim<'s, 'q, 'f>(
        &'s self,
        queue: &'q QueueKeys,
        max: usize,
        lease: Duration,
    ) -> Boxed<'f, Vec<QueueItem>>
    where
        's: 'f,
        'q: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("queue_claim", queue.list()),
            self.inner.claim(queue, max, lease),
        )
    }

    fn ack<'s, 'q, 'i, 'f>(&'s self, queue: &'q QueueKeys, ids: &'i [u64]) -> Boxed<'f, usize>
    where
        's: 'f,
        'q: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("queue_ack", queue.list()), self.inner.ack(queue, ids))
    }
}
