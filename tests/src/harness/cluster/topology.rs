//! What the running nodes say: roles, slot owners, key counts, health, failover.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::super::node::{Node, Role, info_fields, poll_until};
use super::{ClusterNode, READY_TIMEOUT, RedisCluster, SLOTS};

impl RedisCluster {
    /// The running nodes that own slots now (each by its own account), in start order.
    ///
    /// # Panics
    ///
    /// If a running node cannot be asked (with every log).
    pub fn primaries(&self) -> Vec<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .filter(|node| match self.own_line(node) {
                Ok(line) => line.primary && !line.slots.is_empty(),
                Err(err) => self.fail(&err),
            })
            .collect()
    }

    /// The running replicas now, in start order.
    ///
    /// # Panics
    ///
    /// If a running node cannot be asked (with every log).
    pub fn replicas(&self) -> Vec<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .filter(|node| match node.try_role() {
                Ok(role) => role == Role::Replica,
                Err(err) => self.fail(&err),
            })
            .collect()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, asked of a running node: Redis' own CRC16 and hash tag
    /// rules).
    ///
    /// # Panics
    ///
    /// If no running node answers (with every log).
    pub fn slot_of(&self, key: &str) -> u16 {
        let mut last = String::from("no node is running");
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            match node.query::<u16>(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)) {
                Ok(slot) => return slot,
                Err(err) => last = err,
            }
        }
        self.fail(&format!("CLUSTER KEYSLOT {key:?} failed: {last}"))
    }

    /// The running primary that owns `slot` now, by its own account (the newest config epoch wins
    /// should two claim it, as in Redis).
    ///
    /// # Panics
    ///
    /// If no running node owns it (e.g. its primary was killed and not yet replaced), with every log.
    pub fn primary_for_slot(&self, slot: u16) -> &ClusterNode {
        match self.try_primary_for_slot(slot) {
            Ok(Some(node)) => node,
            Ok(None) => self.fail(&format!("no running node owns slot {slot}")),
            Err(err) => self.fail(&err),
        }
    }

    /// The running primary that owns the slot of `key` now; see [`primary_for_slot`](Self::primary_for_slot).
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn primary_for_key(&self, key: &str) -> &ClusterNode {
        self.primary_for_slot(self.slot_of(key))
    }

    /// `DBSIZE` of every primary now, by port.
    ///
    /// # Panics
    ///
    /// If a primary cannot be asked (with every log).
    pub fn count_keys_per_primary(&self) -> BTreeMap<u16, u64> {
        self.primaries()
            .into_iter()
            .map(|node| match node.query::<u64>(&redis::cmd("DBSIZE")) {
                Ok(count) => (node.port(), count),
                Err(err) => self.fail(&format!("DBSIZE failed: {err}")),
            })
            .collect()
    }

    /// `CLUSTER COUNTKEYSINSLOT slot` on the primary owning `slot` now.
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn count_keys_in_slot(&self, slot: u16) -> u64 {
        let owner = self.primary_for_slot(slot);
        match owner.query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot)) {
            Ok(count) => count,
            Err(err) => self.fail(&format!("CLUSTER COUNTKEYSINSLOT {slot} failed: {err}")),
        }
    }

    /// Kills `node` with `SIGKILL` and waits for the process to exit. Its directory (and
    /// `nodes.conf`) stays for [`restart_node`](Self::restart_node).
    pub fn kill(&self, node: &ClusterNode) {
        node.kill();
    }

    /// Kills the primary owning `slot` now with `SIGKILL` and returns it. With a replica, the
    /// cluster promotes it: [`wait_for_new_primary`](Self::wait_for_new_primary).
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn kill_primary(&self, slot: u16) -> &ClusterNode {
        let primary = self.primary_for_slot(slot);
        primary.kill();
        primary
    }

    /// Waits until another running node than `old` owns `slot` in every running node's view, says
    /// `ROLE` master, and every running node says `cluster_state:ok`; returns it. Polls; `timeout`
    /// is the bound ([`failover_bound`](Self::failover_bound) is the one from Redis' timings).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every node's log).
    pub fn wait_for_new_primary(&self, slot: u16, old: &ClusterNode, timeout: Duration) -> &ClusterNode {
        poll_until(timeout, || self.new_primary(slot, old)).unwrap_or_else(|why| {
            self.fail(&format!(
                "slot {slot} has no new primary (other than port {}) {why}",
                old.port()
            ))
        })
    }

    /// Restarts a killed node on its port with its `nodes.conf` (a failed-over primary comes back as
    /// a replica of its successor) and waits until the cluster is healthy again with it.
    ///
    /// # Panics
    ///
    /// If the node does not start, or the cluster is not healthy within 30 s (with every log).
    pub fn restart_node(&self, node: &ClusterNode) {
        node.restart();
        self.wait_until_healthy(READY_TIMEOUT);
    }

    /// Waits until the running nodes form a healthy cluster: `cluster_state:ok` with every slot
    /// served by a running primary, the same topology in every running node's `CLUSTER NODES`,
    /// every running replica's link up (the readiness condition of [`start`](Self::start), for the
    /// running nodes).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every node's log).
    pub fn wait_until_healthy(&self, timeout: Duration) {
        if let Err(why) = poll_until(timeout, || self.health()) {
            self.fail(&format!("the cluster is not healthy {why}"));
        }
    }

    fn try_primary_for_slot(&self, slot: u16) -> Result<Option<&ClusterNode>, String> {
        let mut best: Option<(u64, &ClusterNode)> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let line = self.own_line(node)?;
            if line.primary && line.owns(slot) && best.is_none_or(|(epoch, _)| line.epoch > epoch) {
                best = Some((line.epoch, node));
            }
        }
        Ok(best.map(|(_, node)| node))
    }

    /// The `myself` line of `node`'s `CLUSTER NODES`.
    fn own_line(&self, node: &ClusterNode) -> Result<NodeLine, String> {
        cluster_nodes(node)?
            .into_iter()
            .find(|line| line.myself)
            .ok_or_else(|| format!("{}: CLUSTER NODES has no `myself` line", node.addr()))
    }

    /// `Ok(new primary)` once the condition of [`wait_for_new_primary`](Self::wait_for_new_primary)
    /// holds, else what is missing.
    fn new_primary(&self, slot: u16, old: &ClusterNode) -> Result<&ClusterNode, String> {
        let mut owner: Option<String> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let info = cluster_info(node)?;
            if info.get("cluster_state").map(String::as_str) != Some("ok") {
                return Err(format!("{}: cluster_state is not ok", node.addr()));
            }
            let seen = cluster_nodes(node)?
                .into_iter()
                .find(|line| line.primary && !line.failing && line.owns(slot))
                .map(|line| line.id)
                .ok_or_else(|| format!("{}: no healthy primary owns slot {slot}", node.addr()))?;
            if seen == old.id() {
                return Err(format!(
                    "{}: port {} still owns slot {slot}",
                    node.addr(),
                    old.port()
                ));
            }
            match &owner {
                None => owner = Some(seen),
                Some(first) if *first == seen => {}
                Some(first) => return Err(format!("the nodes disagree on slot {slot}: {first} or {seen}")),
            }
        }
        let owner = owner.ok_or("no node is running")?;
        let node = self
            .nodes
            .iter()
            .find(|node| node.id() == owner && node.is_running())
            .ok_or_else(|| format!("slot {slot} is owned by {owner}, not a running node of this cluster"))?;
        match node.try_role()? {
            Role::Primary => Ok(node),
            role => Err(format!("{} owns slot {slot} but says ROLE {role:?}", node.addr())),
        }
    }

    /// `Ok(())` when the running nodes form a healthy cluster of the expected shape (only the
    /// running nodes count when some were killed), else what is missing.
    fn health(&self) -> Result<(), String> {
        let running: Vec<&ClusterNode> = self.nodes.iter().filter(|node| node.is_running()).collect();
        let running_ids: BTreeSet<&str> = running.iter().map(|node| node.id()).collect();
        let mut agreed: Option<(String, Vec<NodeLine>)> = None;
        for node in &running {
            let info = cluster_info(node)?;
            for (field, want) in [
                ("cluster_state", "ok"),
                ("cluster_slots_assigned", "16384"),
                ("cluster_slots_ok", "16384"),
            ] {
                let seen = info.get(field).map_or("(missing)", String::as_str);
                if seen != want {
                    return Err(format!("{}: {field}:{seen}", node.addr()));
                }
            }
            let mut view: Vec<NodeLine> = cluster_nodes(node)?
                .into_iter()
                .filter(|line| running_ids.contains(line.id.as_str()))
                .collect();
            view.sort_by(|a, b| a.id.cmp(&b.id));
            if view.len() != running.len() {
                return Err(format!(
                    "{} knows {} of the {} running nodes",
                    node.addr(),
                    view.len(),
                    running.len()
                ));
            }
            if let Some(line) = view.iter().find(|line| line.failing || !line.connected) {
                return Err(format!("{} sees {} as {}", node.addr(), line.id, line.flags));
            }
            let served: usize = view
                .iter()
                .filter(|line| line.primary)
                .flat_map(|line| &line.slots)
                .map(|(first, last)| usize::from(last - first) + 1)
                .sum();
            if served != usize::from(SLOTS) {
                return Err(format!(
                    "{} sees {served} slots served by running primaries",
                    node.addr()
                ));
            }
            match &agreed {
                None => agreed = Some((node.addr(), view)),
                Some((first, first_view)) if !same_topology(first_view, &view) => {
                    return Err(format!("{first} and {} see different topologies", node.addr()));
                }
                Some(_) => {}
            }
        }
        let (_, view) = agreed.ok_or("no node is running")?;
        let primaries = view.iter().filter(|line| line.primary).count();
        if running.len() == self.nodes.len() {
            let replicas = view.len() - primaries;
            if primaries != self.primaries || replicas != self.primaries * self.replicas_per_primary {
                return Err(format!("{primaries} primaries and {replicas} replicas"));
            }
        }
        for line in view.iter().filter(|line| !line.primary) {
            let master = line.master.as_deref().unwrap_or("-");
            if !view.iter().any(|other| other.primary && other.id == master) {
                return Err(format!(
                    "replica {} follows {master}, not a running primary",
                    line.id
                ));
            }
            let node = running
                .iter()
                .find(|node| node.id() == line.id)
                .ok_or_else(|| format!("{} is not a running node", line.id))?;
            if !node.replica_link_up()? {
                return Err(format!("{}: master_link_status is not up", node.addr()));
            }
        }
        Ok(())
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    flags: String,
    myself: bool,
    primary: bool,
    /// Flagged `fail`, `fail?`, `handshake` or `noaddr`.
    failing: bool,
    master: Option<String>,
    epoch: u64,
    connected: bool,
    /// Owned slot ranges (inclusive); migrating/importing markers left out.
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// Parses `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
    /// <config-epoch> <link-state> <slot> …`.
    fn parse(line: &str) -> Option<NodeLine> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        let mut slots = Vec::new();
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue;
            }
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            slots.push((first.parse().ok()?, last.parse().ok()?));
        }
        slots.sort_unstable();
        let myself = flags.contains(&"myself");
        Some(NodeLine {
            id: fields[0].to_owned(),
            flags: fields[2].to_owned(),
            myself,
            primary: flags.contains(&"master"),
            failing: flags
                .iter()
                .any(|flag| matches!(*flag, "fail" | "fail?" | "handshake" | "noaddr")),
            master: (fields[3] != "-").then(|| fields[3].to_owned()),
            epoch: fields[6].parse().ok()?,
            // A node's own line says "connected" too; a peer's says whether the bus link is up.
            connected: myself || fields[7] == "connected",
            slots,
        })
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&slot))
    }
}

/// Whether two sorted views agree on every node's role, primary and slots.
fn same_topology(a: &[NodeLine], b: &[NodeLine]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.id == y.id && x.primary == y.primary && x.master == y.master && x.slots == y.slots
        })
}

/// `CLUSTER NODES` of `node`, parsed.
fn cluster_nodes(node: &Node) -> Result<Vec<NodeLine>, String> {
    let text: String = node.query(redis::cmd("CLUSTER").arg("NODES"))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| NodeLine::parse(line).ok_or_else(|| format!("{}: cannot parse {line:?}", node.addr())))
        .collect()
}

/// `CLUSTER INFO` of `node` as fields.
fn cluster_info(node: &Node) -> Result<HashMap<String, String>, String> {
    let text: String = node.query(redis::cmd("CLUSTER").arg("INFO"))?;
    Ok(info_fields(&text))
}

/// Checks of this file's internals, run by the `harness` test binary
/// (`harness::self_checks`).
pub(in crate::harness) mod checks {
    use super::*;

    pub fn cluster_nodes_lines_parse() {
        let line = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host replica,slave \
                    e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected";
        let replica = NodeLine::parse(line).unwrap();
        assert!(!replica.primary && !replica.myself && !replica.failing && replica.connected);
        assert_eq!(
            replica.master.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert!(replica.slots.is_empty());

        let line = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 \
                    connected 5461 0-5460 [5462->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] 10000-10001";
        let primary = NodeLine::parse(line).unwrap();
        assert!(primary.primary && primary.myself && primary.master.is_none());
        assert_eq!(primary.epoch, 1);
        assert_eq!(primary.slots, vec![(0, 5460), (5461, 5461), (10000, 10001)]);
        assert!(primary.owns(0) && primary.owns(5461) && primary.owns(10001));
        assert!(!primary.owns(5462) && !primary.owns(9999));

        let line = "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - \
                    1426238316232 1426238315000 3 disconnected 10923-16383";
        let failed = NodeLine::parse(line).unwrap();
        assert!(failed.failing && !failed.connected);
        assert!(NodeLine::parse("garbage").is_none());
    }
}
