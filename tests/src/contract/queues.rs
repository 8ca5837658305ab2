//! Contract: batch queues ([`statehouse_ports::QueueStore`], and the
//! `Queues` facade over it).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse::{ErrorKind, QueueName, ServiceName, TenantId};
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};

use super::Backend;

const T: &str = "acme";
const LONG: Duration = Duration::from_secs(30);

fn queue(backend: &Backend, batch: &str) -> QueueName {
    backend.queue_facade().queue("mailer", batch, "send").unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// The keys of `queue` of `tenant`, as the facade derives them.
fn keys(tenant_name: &str, queue: &QueueName) -> QueueKeys {
    QueueKeys::new(&tenant(tenant_name), queue)
}

fn index(tenant_name: &str, service: &ServiceName) -> QueueIndex {
    QueueIndex::new(&tenant(tenant_name), service)
}

fn pending(service: &ServiceName) -> ServiceKeys {
    ServiceKeys::new(service.as_str())
}

fn payloads(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|item| item.as_bytes().to_vec()).collect()
}

fn texts(items: &[statehouse::QueueItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| String::from_utf8(item.payload.clone()).unwrap())
        .collect()
}

pub async fn enqueue_keeps_fifo_order_and_marks_the_tenant_pending(backend: Backend) {
    let q = queue(&backend, "nightly");
    let service = q.service.clone();
    assert!(
        backend
            .queues
            .pending(&pending(&service))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        backend
            .queues
            .enqueue(&keys(T, &q), &payloads(&["a", "b", "c"]))
            .await
            .unwrap(),
        [1, 2, 3]
    );
    assert_eq!(
        backend
            .queues
            .enqueue(&keys(T, &q), &payloads(&["d"]))
            .await
            .unwrap(),
        [4]
    );
    assert_eq!(
        backend.queues.enqueue(&keys(T, &q), &[]).await.unwrap(),
        Vec::<u64>::new()
    );
    let items = backend.queues.range(&keys(T, &q), 0, 10).await.unwrap();
    assert_eq!(texts(&items), ["a", "b", "c", "d"]);
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(backend.queues.len(&keys(T, &q)).await.unwrap(), 4);
    assert_eq!(backend.queues.pending(&pending(&service)).await.unwrap(), [T]);
    assert_eq!(
        backend.queues.queues(&index(T, &service)).await.unwrap(),
        std::slice::from_ref(&q)
    );
    // Another tenant and another service.
    backend
        .queues
        .enqueue(&keys("other:tenant", &q), &payloads(&["x"]))
        .await
        .unwrap();
    let elsewhere = backend
        .queue_facade()
        .queue("billing", "nightly", "send")
        .unwrap();
    backend
        .queues
        .enqueue(&keys("third", &elsewhere), &payloads(&["y"]))
        .await
        .unwrap();
    assert_eq!(
        backend.queues.pending(&pending(&service)).await.unwrap(),
        [T, "other:tenant"]
    );
    assert_eq!(
        backend
            .queues
            .pending(&pending(&elsewhere.service))
            .await
            .unwrap(),
        ["third"]
    );
    assert_eq!(backend.queues.len(&keys("other:tenant", &q)).await.unwrap(), 1);
}

pub async fn range_and_trim_read_and_drop_the_oldest(backend: Backend) {
    let q = queue(&backend, "b");
    backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    assert_eq!(
        texts(&backend.queues.range(&keys(T, &q), 1, 2).await.unwrap()),
        ["b", "c"]
    );
    assert!(backend.queues.range(&keys(T, &q), 9, 2).await.unwrap().is_empty());
    assert_eq!(backend.queues.trim(&keys(T, &q), 2).await.unwrap(), 2);
    assert_eq!(
        texts(&backend.queues.range(&keys(T, &q), 0, 10).await.unwrap()),
        ["c", "d", "e"]
    );
    assert_eq!(backend.queues.trim(&keys(T, &q), 10).await.unwrap(), 3);
    assert_eq!(backend.queues.len(&keys(T, &q)).await.unwrap(), 0);
    assert!(
        backend
            .queues
            .queues(&index(T, &q.service))
            .await
            .unwrap()
            .is_empty(),
        "an empty queue leaves the index"
    );
    assert_eq!(
        backend
            .queues
            .enqueue(&keys(T, &q), &payloads(&["f"]))
            .await
            .unwrap(),
        [6],
        "ids keep increasing"
    );
}

pub async fn claimed_items_are_exclusive_and_acked_items_are_gone(backend: Backend) {
    let q = queue(&backend, "b");
    backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    let first = backend.queues.claim(&keys(T, &q), 2, LONG).await.unwrap();
    let second = backend.queues.claim(&keys(T, &q), 2, LONG).await.unwrap();
    assert_eq!(texts(&first), ["a", "b"]);
    assert_eq!(texts(&second), ["c", "d"]);
    assert_eq!(
        backend.queues.len(&keys(T, &q)).await.unwrap(),
        1,
        "claimed items no longer wait"
    );
    assert_eq!(backend.queues.ack(&keys(T, &q), &[1, 2]).await.unwrap(), 2);
    assert_eq!(backend.queues.ack(&keys(T, &q), &[1, 2]).await.unwrap(), 0);
    assert_eq!(backend.queues.ack(&keys(T, &q), &[3, 4, 99]).await.unwrap(), 2);
    assert_eq!(
        backend.queues.queues(&index(T, &q.service)).await.unwrap().len(),
        1,
        "e still waits"
    );
    let last = backend.queues.claim(&keys(T, &q), 10, LONG).await.unwrap();
    assert_eq!(texts(&last), ["e"]);
    assert_eq!(backend.queues.ack(&keys(T, &q), &[5]).await.unwrap(), 1);
    assert!(
        backend
            .queues
            .claim(&keys(T, &q), 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        backend
            .queues
            .queues(&index(T, &q.service))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_crashed_workers_items_come_back_after_the_lease(backend: Backend) {
    let q = queue(&backend, "b");
    backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["a", "b", "c"]))
        .await
        .unwrap();
    let lease = Duration::from_millis(800);
    let crashed = backend.queues.claim(&keys(T, &q), 2, lease).await.unwrap();
    assert_eq!(texts(&crashed), ["a", "b"]);
    let other = backend.queues.claim(&keys(T, &q), 10, LONG).await.unwrap();
    assert_eq!(
        texts(&other),
        ["c"],
        "held items are not handed out during the lease"
    );
    backend.elapse(lease + Duration::from_millis(100)).await;
    let back = backend.queues.claim(&keys(T, &q), 10, LONG).await.unwrap();
    assert_eq!(texts(&back), ["a", "b"]);
    assert_eq!(backend.queues.ack(&keys(T, &q), &[1, 2, 3]).await.unwrap(), 3);
}

pub async fn lapsed_items_come_back_in_queue_order_past_a_digit_boundary(backend: Backend) {
    let q = keys(T, &queue(&backend, "b"));
    let items: Vec<String> = (1..=12).map(|n| format!("i{n}")).collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    backend.queues.enqueue(&q, &payloads(&items)).await.unwrap();
    let lease = Duration::from_millis(300);
    let crashed = backend.queues.claim(&q, 12, lease).await.unwrap();
    assert_eq!(crashed.len(), 12);
    backend.elapse(lease + Duration::from_millis(100)).await;
    let back = backend.queues.claim(&q, 20, LONG).await.unwrap();
    assert_eq!(
        back.iter().map(|item| item.id).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<u64>>(),
        "one lease: ids compared as numbers, not as text"
    );
    assert_eq!(texts(&back), items);
}

pub async fn lapsed_items_of_different_leases_come_back_in_queue_order(backend: Backend) {
    let q = keys(T, &queue(&backend, "b"));
    let items = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    backend.queues.enqueue(&q, &payloads(&items)).await.unwrap();
    // The older items under the longer lease: theirs runs out last.
    let older = backend
        .queues
        .claim(&q, 5, Duration::from_millis(900))
        .await
        .unwrap();
    let newer = backend
        .queues
        .claim(&q, 5, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!((texts(&older).len(), texts(&newer).len()), (5, 5));
    backend.elapse(Duration::from_millis(1000)).await;
    let first = backend.queues.claim(&q, 3, LONG).await.unwrap();
    assert_eq!(texts(&first), ["a", "b", "c"], "the oldest lapsed items first");
    let rest = backend.queues.claim(&q, 20, LONG).await.unwrap();
    assert_eq!(texts(&rest), ["d", "e", "f", "g", "h", "i", "j"]);
    assert_eq!(
        backend
            .queues
            .ack(&q, &(1..=10).collect::<Vec<u64>>())
            .await
            .unwrap(),
        10
    );
}

pub async fn remove_pending_drops_the_mark_and_enqueue_sets_it_again(backend: Backend) {
    let q = queue(&backend, "b");
    backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["a"]))
        .await
        .unwrap();
    assert!(
        backend
            .queues
            .remove_pending(&pending(&q.service), &tenant(T))
            .await
            .unwrap()
    );
    assert!(
        !backend
            .queues
            .remove_pending(&pending(&q.service), &tenant(T))
            .await
            .unwrap()
    );
    assert!(
        backend
            .queues
            .pending(&pending(&q.service))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        backend.queues.len(&keys(T, &q)).await.unwrap(),
        1,
        "the work stays"
    );
    backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["b"]))
        .await
        .unwrap();
    assert_eq!(backend.queues.pending(&pending(&q.service)).await.unwrap(), [T]);
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    producer: usize,
    seq: usize,
}

pub async fn payloads_round_trip_and_bad_names_are_rejected(backend: Backend) {
    let queues = backend.queue_facade();
    let q = queues.queue("svc", "b:1", "act{x}").unwrap();
    let jobs = [Job { producer: 1, seq: 1 }, Job { producer: 2, seq: 7 }];
    queues.enqueue(T, &q, &jobs).await.unwrap();
    let read = queues.range::<Job>(T, &q, 0, 10).await.unwrap();
    assert_eq!(read.iter().map(|i| i.value.clone()).collect::<Vec<_>>(), jobs);
    assert_eq!(queues.queues(T, "svc").await.unwrap(), std::slice::from_ref(&q));
    assert_eq!(
        queues.queue("", "b", "a").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        queues.enqueue("", &q, &jobs).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        queues.pending("bad\nservice").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

pub async fn eight_producers_four_consumers_each_item_exactly_once_in_order(backend: Backend) {
    const PRODUCERS: usize = 8;
    const ITEMS: usize = 500;
    const TOTAL: usize = PRODUCERS * ITEMS;
    let queues = backend.queue_facade();
    let q = queues.queue("mailer", "bulk", "send").unwrap();
    let mut tasks = Vec::new();
    for producer in 0..PRODUCERS {
        let (queues, q) = (queues.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0;
            while seq < ITEMS {
                // One or a few at a time.
                let n = (1 + (seq + producer) % 3).min(ITEMS - seq);
                let jobs: Vec<Job> = (seq..seq + n).map(|seq| Job { producer, seq }).collect();
                queues.enqueue(T, &q, &jobs).await.unwrap();
                seq += n;
            }
        }));
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let consumed: Arc<Mutex<Vec<(u64, Job)>>> = Arc::default();
    for _ in 0..4 {
        let (queues, q, acked, consumed) = (queues.clone(), q.clone(), acked.clone(), consumed.clone());
        tasks.push(tokio::spawn(async move {
            while acked.load(Ordering::SeqCst) < TOTAL {
                let items = queues.claim::<Job>(T, &q, 20, LONG).await.unwrap();
                if items.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let ids: Vec<u64> = items.iter().map(|i| i.id).collect();
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "a claim is in queue order: {ids:?}"
                );
                consumed
                    .lock()
                    .unwrap()
                    .extend(items.into_iter().map(|i| (i.id, i.value)));
                let held = queues.ack(T, &q, &ids).await.unwrap();
                assert_eq!(held, ids.len(), "every claimed item was still held");
                acked.fetch_add(held, Ordering::SeqCst);
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("all items consumed within two minutes");
    let consumed = Arc::try_unwrap(consumed).unwrap().into_inner().unwrap();
    assert_eq!(consumed.len(), TOTAL);
    let ids: HashSet<u64> = consumed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), TOTAL, "no item twice");
    let mut by_producer: BTreeMap<usize, Vec<(u64, usize)>> = BTreeMap::new();
    for (id, job) in &consumed {
        by_producer.entry(job.producer).or_default().push((*id, job.seq));
    }
    for (producer, mut jobs) in by_producer {
        jobs.sort_unstable();
        let seqs: Vec<usize> = jobs.iter().map(|(_, seq)| *seq).collect();
        assert_eq!(
            seqs,
            (0..ITEMS).collect::<Vec<_>>(),
            "producer {producer}: queue order is enqueue order"
        );
    }
    assert_eq!(queues.len(T, &q).await.unwrap(), 0);
    assert!(queues.queues(T, "mailer").await.unwrap().is_empty());
}

pub async fn a_key_of_another_type_is_wrong_type_and_nothing_is_written(backend: Backend) {
    let q = queue(&backend, "b");
    let list = statehouse_domain::layout::TenantKeys::new(T).queue("mailer", "b", "send");
    backend.plant_hash(&list).await;
    let error = backend
        .queues
        .enqueue(&keys(T, &q), &payloads(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::WrongType, list.as_str()),
        "{error}"
    );
    assert!(
        backend
            .queues
            .queues(&index(T, &q.service))
            .await
            .unwrap()
            .is_empty(),
        "nothing written"
    );
    assert_eq!(
        backend
            .queues
            .claim(&keys(T, &q), 1, LONG)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::WrongType
    );
}
