//! The trigger scripts: set, cancel, claim, ack and list of one tenant's
//! triggers, and the cross-tenant due index (mark, take, refile).

use std::sync::LazyLock;

use redis::Script;

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

pub(super) const TRIGGER_CANCEL_CODE: &str = concat!(
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

pub(super) const TRIGGER_LIST_CODE: &str = concat!(
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
