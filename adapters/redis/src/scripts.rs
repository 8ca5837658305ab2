//! The Lua scripts of the Redis adapter, in one place.
//!
//! A script runs inside the MULTI of a WATCH section (`txn::optimistic`)
//! when a write needs a decision Redis commands alone cannot take in one
//! atomic step, such as "set this TTL unless the key already lives longer".
//! Scripts are sent as `EVALSHA`; the WATCH loop loads them on a dedicated
//! connection before its first use and again after a `NOSCRIPT` answer (a
//! restarted or flushed server), so callers never see one. A script that
//! needs no WATCH (tenant writes without a read, the tenant increment,
//! triggers, queues, index pruning) runs alone on the shared connection
//! through [`run_shared`], which sends `EVALSHA` and, on `NOSCRIPT`, loads
//! every script and sends it once more. These two are the only ways a
//! script runs.
//!
//! Every script checks the types of all its keys before writing anything:
//! Redis does not roll a script back, so a `WRONGTYPE` halfway would leave a
//! partial write.

use std::future::Future;
use std::sync::LazyLock;

use crate::conn::Shared;
use redis::{Cmd, Script};
use statehouse_ports::StoreError;

use crate::conn::Connections;
use crate::error;

/// Writes a task record and its index entries in one step.
///
/// KEYS: the record, then `ARGV[5]` index keys to add the task to, then the
/// index keys to remove it from. ARGV: record JSON, TTL (ms), score, member
/// (task id), number of indexes to add to.
///
/// The TTL goes on the record and on every index touched, never shortening
/// a longer one (a persistent key stays persistent); a new key gets it.
pub(crate) static TASK_WRITE: LazyLock<Script> = LazyLock::new(|| Script::new(TASK_WRITE_CODE));

pub const TASK_WRITE_CODE: &str = r"
local ttl = tonumber(ARGV[2])
local added = tonumber(ARGV[5])
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. kind)
end
for i = 2, #KEYS do
  kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= 'zset' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
local function extend(key, existed)
  local left = redis.call('PTTL', key)
  if not existed or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end
local left = redis.call('PTTL', KEYS[1])
if left == -2 or (left >= 0 and left < ttl) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
for i = 2 + added, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[4])
  if redis.call('EXISTS', KEYS[i]) == 1 then
    extend(KEYS[i], true)
  end
end
for i = 2, 1 + added do
  local existed = redis.call('EXISTS', KEYS[i]) == 1
  redis.call('ZADD', KEYS[i], ARGV[3], ARGV[4])
  extend(KEYS[i], existed)
end
return 1
";

/// Removes index entries whose record is gone, checking each record on the
/// server so that an entry whose record was re-created meanwhile stays.
///
/// KEYS: the index, then the record keys. ARGV: the members, aligned with
/// the record keys. Returns how many entries were removed.
pub(crate) static PRUNE_INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(PRUNE_INDEX_CODE));

const PRUNE_INDEX_CODE: &str = r"
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
";

/// Writes fields of a tenant hash and applies a TTL in one step, the way
/// every tenant write treats the TTL: a new hash gets it; an existing one
/// is extended to it unless it already lives longer (never shortened; a
/// persistent hash stays persistent); without a TTL (0) the expiry is kept,
/// also across a `replace`. Checks the key's type before writing anything.
///
/// KEYS: the hash. ARGV: TTL in ms (0: none), mode (`set`, `merge`: also
/// return the whole hash, `replace`: delete the old fields first), then
/// field, value pairs. Run by `EVALSHA`, on the shared connection
/// ([`run_shared`]) or inside the WATCH loop's MULTI.
pub(crate) static TENANT_WRITE: LazyLock<Script> = LazyLock::new(|| Script::new(TENANT_WRITE_CODE));

const TENANT_WRITE_CODE: &str = r"
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local ttl = tonumber(ARGV[1])
local left = redis.call('PTTL', key)
if ARGV[2] == 'replace' then
  redis.call('DEL', key)
end
for i = 3, #ARGV - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
if redis.call('EXISTS', key) == 1 then
  if ttl > 0 and (left == -2 or (left >= 0 and left < ttl)) then
    redis.call('PEXPIRE', key, ttl)
  elseif ARGV[2] == 'replace' and left > 0 then
    redis.call('PEXPIRE', key, left)
  end
end
if ARGV[2] == 'merge' then
  return redis.call('HGETALL', key)
end
return 1
";

/// Adds an integer to a tenant hash field (HINCRBY) and, if the increment
/// went through, applies the TTL as [`TENANT_WRITE`] does, in one step: a
/// failed increment (the field holds no integer, or the sum would
/// overflow) writes nothing, not even the TTL, which a MULTI could not
/// promise.
///
/// KEYS: the hash. ARGV: field, increment, TTL in ms (0: keep the expiry).
/// Errors: `WRONGTYPE …`, `NOTINT …`, `OVERFLOW …`. Run by `EVALSHA` on the
/// shared connection ([`run_shared`]).
pub(crate) static TENANT_INCREMENT: LazyLock<Script> = LazyLock::new(|| Script::new(TENANT_INCREMENT_CODE));

/// The source of `TENANT_INCREMENT`; the benchmark's raw side runs it too.
pub const TENANT_INCREMENT_CODE: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local value = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if type(value) == 'table' and value.err then
  if string.find(value.err, 'overflow', 1, true) then
    return redis.error_reply('OVERFLOW increment or decrement would overflow')
  end
  return redis.error_reply('NOTINT hash value is not an integer')
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local left = redis.call('PTTL', KEYS[1])
  if kind == 'none' or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return value
";

/// The Lua prelude of the trigger and queue scripts: `NOW`, the server's
/// clock in milliseconds (`TIME`), and `check`, which returns a
/// `WRONGTYPE` error reply if any of `{key, type}` holds another type.
macro_rules! prelude {
    () => {
        r"
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function check(pairs)
  for _, p in ipairs(pairs) do
    local kind = redis.call('TYPE', p[1])['ok']
    if kind ~= 'none' and kind ~= p[2] then
      return redis.error_reply('WRONGTYPE ' .. p[1] .. ' holds a ' .. kind)
    end
  end
  return false
end
"
    };
}

/// The Lua helper of the trigger scripts: `next_in()`, how long until the
/// tenant's first trigger (or claimed trigger's lease) is due, in ms, `-1`
/// if it has none; and `sets()`, the tenant's count of sets (field `#sets`
/// of the claims hash), which the due index compares with its marks.
macro_rules! trigger_state {
    () => {
        r"
local function next_in()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  local left = tonumber(first[2]) - NOW
  if left < 0 then left = 0 end
  return left
end
local function sets()
  return tonumber(redis.call('HGET', KEYS[2], '#sets') or '0') or 0
end
"
    };
}

/// Sets (or moves) a trigger, voids its claim and counts the set (field
/// `#sets` of the claims hash, which no member can be: members hold a `:`).
///
/// KEYS: due zset, claims hash, by-id zset. ARGV: member, delay (ms).
pub(crate) static TRIGGER_SET: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_SET_CODE));

/// The Lua source of the trigger set script (for the benchmark's raw side).
pub const TRIGGER_SET_CODE: &str = concat!(
    prelude!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}, {KEYS[3], 'zset'}})
if bad then return bad end
redis.call('ZADD', KEYS[1], NOW + tonumber(ARGV[2]), ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[2], '#sets', 1)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
"
);

/// Removes the triggers of the by-id set named by ARGV (all of it when no
/// ARGV is given), with their claims; returns how many were set.
///
/// KEYS: due zset, claims hash, by-id zset. ARGV: the members to remove
/// (none: every member of the by-id set).
pub(crate) static TRIGGER_CANCEL: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_CANCEL_CODE));

const TRIGGER_CANCEL_CODE: &str = concat!(
    prelude!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}, {KEYS[3], 'zset'}})
if bad then return bad end
local members = ARGV
if #members == 0 then members = redis.call('ZRANGE', KEYS[3], 0, -1) end
local removed = 0
for _, m in ipairs(members) do
  removed = removed + redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
return removed
"
);

/// Claims due triggers: each moves to the end of its lease and gets the
/// next claim token (from the tenant's counter, field `#` of the claims
/// hash, which no member can be: members hold a `:`) and its delivery
/// count, one more than its last claim's (1 when it holds none: set, or
/// set again, since). The claim is `<token>:<deliveries>`; a claim of an
/// older version, a bare token, counts as one delivery.
///
/// KEYS: due zset, claims hash. ARGV: max, lease (ms). Returns `{next due
/// in ms or -1, sets, member, token, deliveries, member, token, deliveries,
/// …}`.
pub(crate) static TRIGGER_CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_CLAIM_CODE));

/// The Lua source of the trigger claim script (for the benchmark's raw side).
pub const TRIGGER_CLAIM_CODE: &str = concat!(
    prelude!(),
    trigger_state!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}})
if bad then return bad end
local due = {}
if tonumber(ARGV[1]) > 0 then
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[1]))
end
local out = {-1, sets()}
local until_ms = NOW + tonumber(ARGV[2])
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, m)
  local token = redis.call('HINCRBY', KEYS[2], '#', 1)
  local deliveries = 1
  local held = redis.call('HGET', KEYS[2], m)
  if held then deliveries = (tonumber(string.match(held, ':(%d+)$')) or 1) + 1 end
  redis.call('HSET', KEYS[2], m, string.format('%d:%d', token, deliveries))
  out[#out + 1] = m
  out[#out + 1] = token
  out[#out + 1] = deliveries
end
out[1] = next_in()
return out
"
);

/// Acknowledges claimed triggers of one tenant, each if its token is the
/// latest (the claim's token: the text before its `:`).
///
/// KEYS: due zset, claims hash, then the by-id zset of each trigger. ARGV:
/// member, token of each trigger, aligned with the by-id keys. Returns
/// `{next due in ms or -1, sets, held, held, …}`: 1 for a trigger that was
/// held (and is now gone), else 0.
pub(crate) static TRIGGER_ACK: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_ACK_CODE));

/// The Lua source of the trigger ack script (for the benchmark's raw side).
pub const TRIGGER_ACK_CODE: &str = concat!(
    prelude!(),
    trigger_state!(),
    r"
local kinds = {{KEYS[1], 'zset'}, {KEYS[2], 'hash'}}
for i = 3, #KEYS do kinds[#kinds + 1] = {KEYS[i], 'zset'} end
local bad = check(kinds)
if bad then return bad end
local out = {-1, sets()}
for i = 3, #KEYS do
  local member, token = ARGV[2 * i - 5], ARGV[2 * i - 4]
  local held = redis.call('HGET', KEYS[2], member)
  if held and string.match(held, '^%d+') == token then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    redis.call('ZREM', KEYS[i], member)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
out[1] = next_in()
return out
"
);

/// Lists a tenant's triggers.
///
/// KEYS: due zset, claims hash. ARGV: 1 for due ones only, else 0. Returns
/// `{member, due ms, claimed 0/1, …}`.
pub(crate) static TRIGGER_LIST: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_LIST_CODE));

const TRIGGER_LIST_CODE: &str = concat!(
    prelude!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}})
if bad then return bad end
local max = '+inf'
if ARGV[1] == '1' then max = NOW end
local all = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', max, 'WITHSCORES')
local out = {}
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = tonumber(all[i + 1])
  out[#out + 1] = redis.call('HEXISTS', KEYS[2], all[i])
end
return out
"
);

/// Files a tenant in its shard of the due index, the first step of a
/// trigger `set` (before the tenant's own script): the tenant's entry goes
/// to the new due time unless it is already earlier (`ZADD LT`), the mark
/// count goes up by one and remembers when (`<sets>:<ms>`), and when the
/// entry became the shard's earliest, the wake-up hint is published.
///
/// KEYS: the shard's tenants zset, its marks hash. ARGV: tenant, delay
/// (ms), wake channel, hint payload. Returns 1 if the hint was published.
pub(crate) static TRIGGER_MARK: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_MARK_CODE));

/// The Lua source of the due index's mark script (for the benchmark's raw side).
pub const TRIGGER_MARK_CODE: &str = concat!(
    prelude!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}})
if bad then return bad end
local due = NOW + tonumber(ARGV[2])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], 'LT', due, ARGV[1])
local mark = redis.call('HGET', KEYS[2], ARGV[1])
local marked = 0
if mark then marked = tonumber(string.match(mark, '^(%d+)')) or 0 end
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d:%d', marked + 1, NOW))
if #first == 0 or due < tonumber(first[2]) then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"
);

/// Takes due tenants from shards of the due index: up to `max` entries due
/// now, earliest first across the shards, each moved to the end of the
/// lease (so other takers skip it until it is filed again).
///
/// KEYS: the shards' tenants zsets. ARGV: max, lease (ms). Returns `{next
/// due in ms over the shards after the take or -1, tenant, tenant, …}`.
pub(crate) static TRIGGER_TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_TAKE_CODE));

/// The Lua source of the due index's take script (for the benchmark's raw side).
pub const TRIGGER_TAKE_CODE: &str = concat!(
    prelude!(),
    r"
local kinds = {}
for i = 1, #KEYS do kinds[i] = {KEYS[i], 'zset'} end
local bad = check(kinds)
if bad then return bad end
local max = tonumber(ARGV[1])
local until_ms = NOW + tonumber(ARGV[2])
local due = {}
for i = 1, #KEYS do
  local found = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, max)
  for j = 1, #found, 2 do due[#due + 1] = {tonumber(found[j + 1]), i, found[j]} end
end
table.sort(due, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end)
local out = {-1}
for n = 1, math.min(max, #due) do
  redis.call('ZADD', KEYS[due[n][2]], until_ms, due[n][3])
  out[#out + 1] = due[n][3]
end
for i = 1, #KEYS do
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if #first > 0 then
    local left = tonumber(first[2]) - NOW
    if left < 0 then left = 0 end
    if out[1] < 0 or left < out[1] then out[1] = left end
  end
end
return out
"
);

/// Files a tenant again after a claim or an ack saw it: at its next due
/// time (removed if it has none) when every set marked for it was counted
/// by that claim or ack (`marked <= sets`), or when its last mark is older
/// than a minute (a set that never wrote: adopted, the mark count set to
/// the tenant's). Otherwise a set is in flight: the entry is only ever
/// lowered, to the next due time or to a look again soon (50 ms, or as
/// long as the mark is old, at most a minute).
///
/// KEYS: the shard's tenants zset, its marks hash. ARGV: tenant, sets (the
/// tenant's count), next due in ms (-1: none). Returns 1 if filed exactly,
/// 0 if left for a second look.
pub(crate) static TRIGGER_REFILE: LazyLock<Script> = LazyLock::new(|| Script::new(TRIGGER_REFILE_CODE));

/// The Lua source of the due index's refile script (for the benchmark's raw side).
pub const TRIGGER_REFILE_CODE: &str = concat!(
    prelude!(),
    r"
local bad = check({{KEYS[1], 'zset'}, {KEYS[2], 'hash'}})
if bad then return bad end
local SETTLE, RETRY = 60000, 50
local tenant, seen, next_in = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marked, at = 0, 0
local mark = redis.call('HGET', KEYS[2], tenant)
if mark then
  marked = tonumber(string.match(mark, '^(%d+)')) or 0
  at = tonumber(string.match(mark, ':(%d+)$')) or 0
end
local age = NOW - at
if marked <= seen or age > SETTLE then
  if marked ~= seen then redis.call('HSET', KEYS[2], tenant, string.format('%d:%d', seen, at)) end
  if next_in < 0 then
    redis.call('ZREM', KEYS[1], tenant)
  else
    redis.call('ZADD', KEYS[1], NOW + next_in, tenant)
  end
  return 1
end
local soon = NOW + math.min(math.max(age, RETRY), SETTLE)
if next_in >= 0 and NOW + next_in < soon then soon = NOW + next_in end
redis.call('ZADD', KEYS[1], 'LT', soon, tenant)
return 0
"
);

/// The type checks of a queue's keys.
macro_rules! queue_checks {
    () => {
        r"
local bad = check({{KEYS[1], 'list'}, {KEYS[2], 'hash'}, {KEYS[3], 'zset'}, {KEYS[4], 'zset'}})
if bad then return bad end
local function unindex_if_empty()
  if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
    redis.call('ZREM', KEYS[4], ARGV[1])
  end
end
"
    };
}

/// Appends items to a queue: ids from the counter (field `next` of the
/// items hash), payloads in the hash, ids on the list, the queue in the
/// tenant's index.
///
/// KEYS: list, items hash, leases zset, index zset. ARGV: index member,
/// payloads. Returns the ids.
pub(crate) static QUEUE_ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_ENQUEUE_CODE));

/// The Lua source of the enqueue script (for the benchmark's raw side).
pub const QUEUE_ENQUEUE_CODE: &str = concat!(
    prelude!(),
    queue_checks!(),
    r"
local n = #ARGV - 1
if n == 0 then return {} end
local last = redis.call('HINCRBY', KEYS[2], 'next', n)
local ids = {}
for i = 1, n do
  local id = last - n + i
  ids[i] = id
  redis.call('HSET', KEYS[2], id, ARGV[i + 1])
  redis.call('RPUSH', KEYS[1], id)
end
redis.call('ZADD', KEYS[4], 'NX', NOW, ARGV[1])
return ids
"
);

/// Reads waiting items by index.
///
/// KEYS: list, items hash, leases zset, index zset. ARGV: index member,
/// start, stop. Returns `{id, payload, …}`.
pub(crate) static QUEUE_RANGE: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_RANGE_CODE));

const QUEUE_RANGE_CODE: &str = concat!(
    prelude!(),
    queue_checks!(),
    r"
local ids = redis.call('LRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"
);

/// Removes the oldest waiting items.
///
/// KEYS: list, items hash, leases zset, index zset. ARGV: index member,
/// count. Returns how many went.
pub(crate) static QUEUE_TRIM: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_TRIM_CODE));

const QUEUE_TRIM_CODE: &str = concat!(
    prelude!(),
    queue_checks!(),
    r"
local count = tonumber(ARGV[2])
if count <= 0 then return 0 end
local ids = redis.call('LRANGE', KEYS[1], 0, count - 1)
redis.call('LTRIM', KEYS[1], count, -1)
for _, id in ipairs(ids) do redis.call('HDEL', KEYS[2], id) end
unindex_if_empty()
return #ids
"
);

/// Claims items: expired leases first, then waiting items, oldest first
/// (by id: queue order). A lease that ran out is first parked below every
/// lease end, at `id - 2^53`, so lapsed items sort by id whatever lease
/// they had (equal lease ends would otherwise sort ids as text: 10 before
/// 2); each lapsed lease is parked once.
///
/// KEYS: list, items hash, leases zset, index zset. ARGV: index member,
/// max, lease (ms). Returns `{id, payload, …}`.
pub(crate) static QUEUE_CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_CLAIM_CODE));

/// The Lua source of the queue claim script (for the benchmark's raw side).
pub const QUEUE_CLAIM_CODE: &str = concat!(
    prelude!(),
    queue_checks!(),
    r"
local max = tonumber(ARGV[2])
local until_ms = NOW + tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], 0, NOW)) do
  redis.call('ZADD', KEYS[3], tonumber(id) - 9007199254740992, id)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(0', 'LIMIT', 0, max)
while #ids < max do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  ids[#ids + 1] = id
end
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[3], until_ms, id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"
);

/// Acknowledges claimed items.
///
/// KEYS: list, items hash, leases zset, index zset. ARGV: index member,
/// ids. Returns how many were held.
pub(crate) static QUEUE_ACK: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_ACK_CODE));

/// The Lua source of the queue ack script (for the benchmark's raw side).
pub const QUEUE_ACK_CODE: &str = concat!(
    prelude!(),
    queue_checks!(),
    r"
local held = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    held = held + 1
  end
end
unindex_if_empty()
return held
"
);

/// Compare-and-set of a document that announces itself: if the string at
/// the key holds exactly the expected bytes (or is absent, as expected), sets
/// it to the new ones keeping its TTL (`KEEPTTL`) and publishes the change
/// notice on the key's change channel, in one step; otherwise writes nothing
/// and answers the current bytes. Checks the key's type first.
///
/// KEYS: the document. ARGV: `1` if a value is expected (`0`: the key must
/// be absent), the expected bytes (ignored when absent is expected), the new
/// bytes, the change channel, the notice. Returns `{1}` when swapped, `{0}`
/// when refused and the key is absent, `{0, current}` when refused.
pub(crate) static DOC_SWAP: LazyLock<Script> = LazyLock::new(|| Script::new(DOC_SWAP_CODE));

/// The Lua source of the document swap (for the benchmark's raw side).
pub const DOC_SWAP_CODE: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local current = redis.call('GET', KEYS[1])
if not current then
  if ARGV[1] == '1' then return {0} end
elseif ARGV[1] ~= '1' or current ~= ARGV[2] then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1}
";

/// The source of every script, for loading them on a connection.
const ALL: [&str; 18] = [
    TASK_WRITE_CODE,
    PRUNE_INDEX_CODE,
    TENANT_WRITE_CODE,
    TENANT_INCREMENT_CODE,
    TRIGGER_SET_CODE,
    TRIGGER_CANCEL_CODE,
    TRIGGER_CLAIM_CODE,
    TRIGGER_ACK_CODE,
    TRIGGER_LIST_CODE,
    TRIGGER_MARK_CODE,
    TRIGGER_TAKE_CODE,
    TRIGGER_REFILE_CODE,
    QUEUE_ENQUEUE_CODE,
    QUEUE_RANGE_CODE,
    QUEUE_TRIM_CODE,
    QUEUE_CLAIM_CODE,
    QUEUE_ACK_CODE,
    DOC_SWAP_CODE,
];

/// `EVALSHA` of `script` with `keys` and `args`, for a pipeline.
pub(crate) fn evalsha<K: redis::ToRedisArgs, A: redis::ToRedisArgs>(
    script: &Script,
    keys: &[K],
    args: A,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys).arg(args);
    cmd
}

/// Runs `call` (commands with `EVALSHA`s, or a `MULTI` holding some) on
/// the shared connection under the response timeout; on a `NOSCRIPT`
/// answer (a restarted or flushed server) loads every script and runs it
/// once more. On a cluster, `EVALSHA` goes where its first key lives
/// (redis-rs routes it), and the scripts are loaded on every primary, the
/// node that answered among them. Outside a WATCH section this is how scripts run: a script is
/// one atomic step by itself. A `NOSCRIPT` inside a `MULTI` ran the
/// transaction's other commands, so those must be idempotent (they are:
/// `ZADD NX`).
pub(crate) async fn run_shared<T, F, Fut>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    mut call: F,
) -> Result<T, StoreError>
where
    F: FnMut(Shared) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match conns.run_raw(op, key, call(conns.shared())).await? {
        Ok(value) => return Ok(value),
        Err(error) if error::is_no_script(&error) => {}
        Err(error) => return Err(conns.map_shared(op, key, error)),
    }
    conns.load_scripts(op, key, &load_all()).await?;
    conns.run(op, key, call(conns.shared())).await
}

/// `SCRIPT LOAD` of every script, answers ignored.
pub(crate) fn load_all() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for code in ALL {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    pipe
}
