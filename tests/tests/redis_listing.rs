//! Listings on Redis when the server goes away in the middle: a dropped
//! connection resumes at the cursor (nothing lost, nothing repeated); a
//! restarted server (another process: another hash table) fails the
//! listing with an error saying so, never a listing that ends short.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use statehouse::{Documents, ErrorKind, KeyStream};
use statehouse_redis::{RedisConfig, RedisStore};
use statehouse_tests::harness::RedisServer;

async fn docs(server: &RedisServer) -> Documents {
    let config =
        RedisConfig::new(server.url()).with_timeouts(Duration::from_millis(400), Duration::from_millis(400));
    Documents::new(Arc::new(RedisStore::connect(config).await.unwrap()))
}

async fn fill(docs: &Documents, n: usize) {
    for i in 0..n {
        docs.set(&format!("k:{i}"), &i).await.unwrap();
    }
}

/// The next page, reading again after temporary failures (as the
/// `Retrying` layer does), for at most 10 s.
async fn next_page(stream: &mut KeyStream) -> Result<Option<Vec<String>>, statehouse::StoreError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.next_page().await {
            Err(error) if error.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_the_listing_at_its_cursor() {
    let server = RedisServer::start();
    let docs = docs(&server).await;
    fill(&docs, 3000).await;
    let mut stream = docs.stream_keys("k:*").unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut pages = 0;
    while let Some(page) = next_page(&mut stream).await.unwrap() {
        pages += 1;
        for key in page {
            *seen.entry(key).or_insert(0) += 1;
        }
        // Cut every client connection (statehouse's included) between pages.
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .query(&mut server.connection())
            .unwrap();
        assert!(killed >= 1, "the store's connection was cut");
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(seen.len(), 3000, "every key");
    assert!(seen.values().all(|&n| n == 1), "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_fails_the_listing_instead_of_ending_it_short() {
    let mut server = RedisServer::start_durable();
    let docs = docs(&server).await;
    fill(&docs, 3000).await;
    let mut stream = docs.stream_keys("k:*").unwrap();
    let first = next_page(&mut stream).await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < 3000);
    server.restart();
    let error = next_page(&mut stream).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Operation, "{error}");
    let message = error.to_string();
    assert!(message.contains("changed during the listing"), "{message}");
    assert!(message.contains("list again"), "{message}");
    assert!(next_page(&mut stream).await.is_err(), "it keeps failing");
    // A new listing on the new server is whole again.
    assert_eq!(
        docs.stream_keys("k:*").unwrap().collect().await.unwrap().len(),
        3000
    );
}
