//! The contract suite on the Redis adapter connected to a Redis Cluster of
//! three primaries (`redis+cluster://…` naming every node), started once
//! for this test process (`RedisCluster::shared`, keyspace notifications
//! on); each test under its own key prefix.

use statehouse_tests::backends::{Stack, run_cluster};
use statehouse_tests::contract::{Body, Flavor};

fn run(flavor: Flavor, body: Body) {
    run_cluster(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);

/// On a cluster the queue and its service's pending set are in different
/// slots, so `enqueue` marks the tenant pending first and pushes after
/// (docs/keys.md): a push that fails leaves the mark (harmless: a worker
/// finds the queue empty), never work without a mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_on_a_cluster_marks_the_tenant_pending_before_it_pushes() {
    use statehouse_domain::layout::{QueueKeys, hash_slot};
    use statehouse_domain::{ActionName, BatchName, QueueName, ServiceName, TenantId};
    use statehouse_ports::{ErrorKind, QueueStore};
    use statehouse_redis::{RedisConfig, RedisStore};
    use statehouse_tests::harness::RedisCluster;

    let cluster = RedisCluster::shared();
    let prefix = "mark-then-push:";
    let store = RedisStore::connect(RedisConfig::new(cluster.url()).with_prefix(prefix))
        .await
        .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let name = |service: &str| {
        QueueName::new(
            ServiceName::new(service).unwrap(),
            BatchName::new("daily").unwrap(),
            ActionName::new("send").unwrap(),
        )
    };
    let client = redis::cluster::ClusterClient::new(cluster.seed_urls()).unwrap();
    let mut raw = client.get_async_connection().await.unwrap();
    let pending_score = |queue: &QueueKeys| {
        redis::cmd("ZSCORE")
            .arg(format!("{prefix}{}", queue.pending()))
            .arg("acme")
            .clone()
    };

    // The two steps really are in two slots here.
    let queue = QueueKeys::new(&tenant, &name("mailer"));
    assert_ne!(
        hash_slot(format!("{prefix}{}", queue.pending()).as_bytes()),
        hash_slot(format!("{prefix}{}", queue.list()).as_bytes())
    );
    assert_eq!(store.enqueue(&queue, &[b"one".to_vec()]).await.unwrap().len(), 1);
    let score: Option<f64> = pending_score(&queue).query_async(&mut raw).await.unwrap();
    assert!(score.is_some(), "an enqueue marks its tenant pending");

    // A push that fails (its list is a string) comes after the mark.
    let broken = QueueKeys::new(&tenant, &name("billing"));
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}{}", broken.list()))
        .arg("not a list")
        .query_async(&mut raw)
        .await
        .unwrap();
    let error = store.enqueue(&broken, &[b"two".to_vec()]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    let score: Option<f64> = pending_score(&broken).query_async(&mut raw).await.unwrap();
    assert!(score.is_some(), "the mark was made before the failed push");
}
