//! What the sentinels and the data nodes report: the primary each sentinel names, the one they agree
//! on, and whether the set has settled.

use std::collections::{BTreeSet, HashMap};

use super::SentinelSet;
use crate::harness::node::{Node, Role, info_fields};

impl SentinelSet {
    /// The port `sentinel` reports for the service.
    pub(super) fn reported_primary(&self, sentinel: &Node) -> Result<u16, String> {
        let addr: Option<(String, u16)> = sentinel.query(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.service),
        )?;
        addr.map(|(_, port)| port)
            .ok_or_else(|| format!("{} does not know {}", sentinel.addr(), self.service))
    }

    /// The port every running sentinel reports for the service.
    pub(super) fn agreed_primary(&self) -> Result<u16, String> {
        let mut agreed = None;
        for sentinel in self.sentinels.iter().filter(|node| node.is_running()) {
            let port = self.reported_primary(sentinel)?;
            match agreed {
                None => agreed = Some(port),
                Some(first) if first == port => {}
                Some(first) => return Err(format!("the sentinels report port {first} and port {port}")),
            }
        }
        agreed.ok_or_else(|| "no sentinel is running".to_owned())
    }

    /// `Ok` when the set is settled (see [`wait_until_settled`](Self::wait_until_settled)). `strict`
    /// (the start) also wants each sentinel's own record of every replica to show its link to the
    /// primary up and `SENTINEL CKQUORUM` to pass; Sentinel refreshes a replica's record only every
    /// 10 s, so after a failover that would wait for nothing a client sees.
    pub(super) fn settled(&self, strict: bool) -> Result<(), String> {
        let primary = self.agreed_primary()?;
        let primary_node = self.data_node(primary)?;
        if primary_node.try_role()? != Role::Primary {
            return Err(format!(
                "{} is reported as the primary but is not one",
                primary_node.addr()
            ));
        }
        let replicas: BTreeSet<u16> = self
            .data
            .iter()
            .filter(|node| node.is_running() && self.announced_port(node) != primary)
            .map(|node| self.announced_port(node))
            .collect();
        for port in &replicas {
            let node = self.data_node(*port)?;
            let info: String = node.query(redis::cmd("INFO").arg("replication"))?;
            let fields = info_fields(&info);
            if fields.get("role").map(String::as_str) != Some("slave")
                || fields.get("master_port") != Some(&primary.to_string())
                || fields.get("master_link_status").map(String::as_str) != Some("up")
            {
                return Err(format!(
                    "{} is not a linked replica of port {primary}",
                    node.addr()
                ));
            }
        }
        let running_sentinels: BTreeSet<u16> = self
            .sentinels
            .iter()
            .filter(|node| node.is_running())
            .map(|node| self.announced_port(node))
            .collect();
        for sentinel in self.sentinels.iter().filter(|node| node.is_running()) {
            let listed: Vec<Vec<String>> =
                sentinel.query(redis::cmd("SENTINEL").arg("REPLICAS").arg(&self.service))?;
            let mut known = BTreeSet::new();
            for fields in listed.iter().map(|flat| pairs(flat)) {
                let port = fields.get("port").and_then(|port| port.parse::<u16>().ok());
                let up = fields.get("flags").is_some_and(|flags| not_down(flags));
                let linked = fields.get("master-link-status").map(String::as_str) == Some("ok")
                    && fields.get("master-port") == Some(&primary.to_string());
                if let Some(port) = port
                    && up
                    && (linked || !strict)
                {
                    known.insert(port);
                }
            }
            if !replicas.is_subset(&known) {
                return Err(format!(
                    "{} knows the replicas {known:?} (want {replicas:?})",
                    sentinel.addr()
                ));
            }
            let listed: Vec<Vec<String>> =
                sentinel.query(redis::cmd("SENTINEL").arg("SENTINELS").arg(&self.service))?;
            let mut known: BTreeSet<u16> = listed
                .iter()
                .map(|flat| pairs(flat))
                .filter(|fields| fields.get("flags").is_some_and(|flags| not_down(flags)))
                .filter_map(|fields| fields.get("port").and_then(|port| port.parse().ok()))
                .collect();
            known.insert(self.announced_port(sentinel));
            if !running_sentinels.is_subset(&known) {
                return Err(format!(
                    "{} knows the sentinels {known:?} (want {running_sentinels:?})",
                    sentinel.addr()
                ));
            }
            if strict {
                sentinel.query::<String>(redis::cmd("SENTINEL").arg("CKQUORUM").arg(&self.service))?;
            }
        }
        Ok(())
    }
}

/// The calls of the commands task reads send (`GET`, `ZRANGE`, `MGET`, `EXISTS`) in a node's
/// `INFO commandstats` reply: how the read endpoint's tests see where task reads ran.
pub fn task_read_calls(commandstats: &str) -> u64 {
    commandstats
        .lines()
        .filter_map(|line| {
            let (command, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            if !["get", "zrange", "mget", "exists"].contains(&command) {
                return None;
            }
            rest.strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Creates task `id` through `tasks` (whose task reads go to a replica) and waits until a read
/// finds it there (replication is asynchronous), for at most 5 s.
///
/// # Panics
///
/// If a call fails or the replica read from does not have the task within 5 s.
pub async fn create_task_seen_on_replica(tasks: &statehouse::Tasks, id: &str) {
    tasks
        .create(id, "exporter", "ada")
        .await
        .unwrap_or_else(|error| panic!("create {id}: {error}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tasks
        .get(id)
        .await
        .unwrap_or_else(|error| panic!("get {id}: {error}"))
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} not on the replica after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A flat `[name, value, name, value, …]` reply as a map.
fn pairs(flat: &[String]) -> HashMap<String, String> {
    flat.chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// Whether Sentinel's `flags` say the instance is reachable and not thought down.
pub(super) fn not_down(flags: &str) -> bool {
    !flags
        .split(',')
        .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"))
}
