//! Concurrent writers of one task, and paging while tasks change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statehouse::{PageRequest, TaskStatus};

use super::next_millisecond;
use crate::contract::Backend;

pub async fn concurrent_log_appends_lose_nothing(backend: Backend) {
    const WRITERS: usize = 8;
    const LINES: usize = 100;
    backend.tasks().create("busy", "svc", "u").await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let tasks = backend.tasks();
        writers.spawn(async move {
            for i in 0..LINES {
                tasks.append_log("busy", &format!("{w}:{i}")).await.unwrap();
            }
        });
    }
    writers.join_all().await;
    let task = backend.tasks().get("busy").await.unwrap().unwrap();
    assert_eq!(task.log.len(), WRITERS * LINES);
    for w in 0..WRITERS {
        let mine: Vec<usize> = task
            .log
            .iter()
            .filter_map(|e| e.message.strip_prefix(&format!("{w}:")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..LINES).collect::<Vec<_>>(), "writer {w}'s lines");
    }
}

pub async fn status_change_racing_with_appends_loses_neither(backend: Backend) {
    backend.tasks().create("race", "svc", "u").await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let tasks = backend.tasks();
        writers.spawn(async move {
            for i in 0..50 {
                tasks.append_log("race", &format!("{w}:{i}")).await.unwrap();
            }
        });
    }
    let tasks = backend.tasks();
    writers.spawn(async move {
        tasks
            .set_status("race", TaskStatus::Running, Some("run"))
            .await
            .unwrap();
        tasks
            .set_status("race", TaskStatus::Completed, Some("done"))
            .await
            .unwrap();
    });
    writers.join_all().await;
    let task = backend.tasks().get("race").await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.log.len(), 4 * 50 + 2);
    let statuses: Vec<&str> = task
        .log
        .iter()
        .filter(|e| e.message == "run" || e.message == "done")
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["running", "completed"]);
}

pub async fn paging_while_tasks_are_inserted_and_updated_repeats_none_and_keeps_the_rest(backend: Backend) {
    const TASKS: usize = 120;
    let tasks = backend.tasks();
    for i in 0..TASKS {
        tasks.create(&format!("p-{i:03}"), "svc", "u").await.unwrap();
        if i % 4 == 0 {
            next_millisecond();
        }
    }
    // While the pages are read, every tenth task is updated (it moves to
    // the front) and new tasks keep coming, in every bucket.
    let touched: BTreeSet<String> = (0..TASKS).step_by(10).map(|i| format!("p-{i:03}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (tasks, touched, stop) = (backend.tasks(), touched.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                tasks.create(&format!("n-{rounds}"), "svc", "u").await.unwrap();
                for id in &touched {
                    tasks.append_log(id, "tick").await.unwrap();
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut page = PageRequest::first(7);
    let mut pages = 0;
    loop {
        let got = tasks.list_by_service("svc", page.clone()).await.unwrap();
        for item in &got.items {
            let record = item.as_ref().unwrap();
            seen.push((record.updated_millis(), record.id.to_string()));
        }
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        match got.next {
            Some(cursor) => page = PageRequest::first(7).after(cursor),
            None => break,
        }
        // Let the writer interleave.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.await.unwrap();
    assert!(rounds > 0, "the writer ran while the pages were read");
    // No task shows twice.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, id) in &seen {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "shown twice: {repeated:?}");
    // Every task nobody wrote meanwhile shows once, in listing order.
    let untouched: Vec<&(i64, String)> = seen
        .iter()
        .filter(|(_, id)| id.starts_with("p-") && !touched.contains(id))
        .collect();
    assert_eq!(untouched.len(), TASKS - touched.len(), "{seen:?}");
    for pair in untouched.windows(2) {
        assert!(pair[0] > pair[1], "out of order: {pair:?}");
    }
    // And the index still holds every task once.
    let all = backend.tasks().count_by_service("svc").await.unwrap();
    assert_eq!(all, (TASKS + rounds) as u64);
}
