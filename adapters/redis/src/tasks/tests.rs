//! Every multi-key operation of the task family names keys of one Redis
//! Cluster hash slot: each multi-key command, and each MULTI together with
//! the key its WATCH section watches. Checked on the commands as built
//! (`commands.rs`), for ids of every bucket, with a store prefix; slots
//! by the one `hash_slot` (`statehouse_domain::layout`).

use std::collections::BTreeSet;

use statehouse_domain::layout::hash_slot;

use redis::{Cmd, Pipeline};
use statehouse_ports::{
    BucketRead, ServiceName, TaskBucket, TaskId, TaskIndex, TaskRecord, TaskSpace, UserId,
};

use super::TaskCommands;
use crate::keys::Keys;

/// The keys a command names, by its name.
fn keys_of(cmd: &Cmd) -> Vec<Vec<u8>> {
    let args: Vec<Vec<u8>> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
            _ => None,
        })
        .collect();
    let name = String::from_utf8_lossy(&args[0]).to_uppercase();
    match name.as_str() {
        "GET" | "ZREM" | "ZRANGE" | "ZADD" => vec![args[1].clone()],
        "DEL" | "MGET" | "EXISTS" => args[1..].to_vec(),
        "EVALSHA" => {
            let count: usize = String::from_utf8_lossy(&args[2]).parse().unwrap();
            args[3..3 + count].to_vec()
        }
        other => panic!("no key rule for {other}"),
    }
}

/// The one slot of `keys`; fails naming them if there are more.
fn one_slot(what: &str, keys: &[Vec<u8>]) -> u16 {
    let slots: BTreeSet<u16> = keys.iter().map(|key| hash_slot(key)).collect();
    let named: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(slots.len(), 1, "{what} spans slots {slots:?}: {named:?}");
    slots.into_iter().next().unwrap()
}

/// A MULTI of `pipe` run in the WATCH section on `watched`: one slot.
fn atomic_in_one_slot(what: &str, watched: &str, pipe: &Pipeline) -> u16 {
    let mut keys = vec![watched.as_bytes().to_vec()];
    for cmd in pipe.cmd_iter() {
        keys.extend(keys_of(cmd));
    }
    one_slot(what, &keys)
}

/// Each command of `pipe` (sent without MULTI): one slot; returns them.
fn each_in_one_slot(what: &str, pipe: &Pipeline) -> Vec<u16> {
    pipe.cmd_iter().map(|cmd| one_slot(what, &keys_of(cmd))).collect()
}

/// Ids in every bucket (several per bucket), with odd characters.
fn ids() -> Vec<String> {
    let ids: Vec<String> = (0..400).map(|i| format!("job:{i} {{x}}")).collect();
    let buckets: BTreeSet<TaskBucket> = ids.iter().map(|id| TaskBucket::of(id)).collect();
    assert_eq!(buckets.len(), usize::from(TaskBucket::COUNT));
    ids
}

fn record(id: &str, service: &str, user: &str) -> TaskRecord {
    TaskRecord::new(
        TaskId::new(id).unwrap(),
        ServiceName::new(service).unwrap(),
        UserId::new(user).unwrap(),
        chrono::Utc::now(),
    )
}

fn indexes(service: &str, user: &str) -> [TaskIndex; 2] {
    [
        TaskIndex::Service(ServiceName::new(service).unwrap()),
        TaskIndex::User(UserId::new(user).unwrap()),
    ]
}

#[test]
fn a_write_and_a_delete_touch_the_slot_of_the_tasks_bucket_only() {
    // A prefix holding a brace pair is the hash tag of every key (all of
    // them in its slot: still one slot per write, but no spreading).
    for (prefix, spread) in [("app:", usize::from(TaskBucket::COUNT)), ("app{1}:", 1)] {
        writes_and_deletes_in_one_slot(prefix, spread);
    }
}

fn writes_and_deletes_in_one_slot(prefix: &str, spread: usize) {
    let keys = Keys::new(prefix);
    let space = TaskSpace::new("ns:{eu}");
    let commands = TaskCommands::new(&keys, &space);
    let mut slots = BTreeSet::new();
    for id in ids() {
        let rkey = commands.record(&id);
        let task = record(&id, "mail er", "u:1");
        let bytes = serde_json::to_vec(&task).unwrap();
        // save moving the task out of another service's and user's index.
        let write = commands.write(&rkey, &task, &bytes, &indexes("old-svc", "old-user"), 1000);
        let slot = atomic_in_one_slot("save", &rkey, &write);
        assert_eq!(write.cmd_iter().count(), 1);
        assert_eq!(
            keys_of(write.cmd_iter().next().unwrap()).len(),
            5,
            "record, 2 new and 2 old indexes"
        );
        let delete = commands.delete(&rkey, &id, &bytes);
        assert_eq!(atomic_in_one_slot("delete", &rkey, &delete), slot);
        slots.insert(slot);
    }
    assert_eq!(slots.len(), spread, "slots of the buckets under {prefix:?}");
}

#[test]
fn a_listing_reads_each_bucket_and_its_records_in_one_slot_per_command() {
    let keys = Keys::new("app:");
    let space = TaskSpace::default();
    let commands = TaskCommands::new(&keys, &space);
    let index = TaskIndex::Service(ServiceName::new("mailer").unwrap());
    let reads: Vec<BucketRead> = TaskBucket::all()
        .map(|bucket| BucketRead {
            bucket,
            max: Some(7),
            count: 12,
        })
        .collect();
    let range_slots = each_in_one_slot("list", &commands.bucket_reads(&index, &reads));
    // The records of one bucket: one MGET, in that bucket's slot.
    let ids = ids();
    let groups: Vec<Vec<&str>> = TaskBucket::all()
        .map(|bucket| {
            ids.iter()
                .map(String::as_str)
                .filter(|id| TaskBucket::of(id) == bucket)
                .collect()
        })
        .collect();
    let mget_slots = each_in_one_slot(
        "list",
        &commands.record_reads(groups.iter().map(|g| g.iter().copied())),
    );
    assert_eq!(
        range_slots, mget_slots,
        "each bucket's index and records share its slot"
    );
    let exists_slots = each_in_one_slot(
        "count",
        &commands.exists(groups.iter().map(|g| g.iter().copied())),
    );
    assert_eq!(exists_slots, mget_slots);
    let chunks: Vec<(TaskBucket, usize)> = TaskBucket::all().map(|b| (b, 1000)).collect();
    assert_eq!(
        each_in_one_slot("count", &commands.count_ranges(&index, &chunks, 1000)),
        range_slots
    );
    let stale: Vec<(TaskBucket, String)> = ids.iter().map(|id| (TaskBucket::of(id), id.clone())).collect();
    assert_eq!(
        each_in_one_slot("prune", &commands.prune(&index, &stale)),
        range_slots
    );
    let distinct: BTreeSet<u16> = range_slots.iter().copied().collect();
    assert_eq!(distinct.len(), usize::from(TaskBucket::COUNT));
}

#[test]
fn the_migration_removes_a_legacy_task_within_the_legacy_slot() {
    let keys = Keys::new("app:");
    let space = TaskSpace::default();
    let commands = TaskCommands::new(&keys, &space);
    for id in ids().iter().take(40) {
        let task = record(id, "svc", "u");
        let bytes = serde_json::to_vec(&task).unwrap();
        let rlegacy = commands.legacy_record(id);
        let remove = commands.legacy_remove(&rlegacy, id, &bytes);
        assert_eq!(remove.cmd_iter().count(), 3, "the record and both index entries");
        assert_eq!(
            atomic_in_one_slot("migrate_legacy", &rlegacy, &remove),
            hash_slot(b"tasks")
        );
        // The move into the bucket is a task write (checked above).
        let rkey = commands.record(id);
        atomic_in_one_slot(
            "migrate_legacy",
            &rkey,
            &commands.write(&rkey, &task, &bytes, &[], 1000),
        );
    }
}
