//! The queue scripts: enqueue, range, trim, claim and ack.

use std::sync::LazyLock;

use redis::Script;

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

pub(super) const QUEUE_RANGE_CODE: &str = concat!(
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

pub(super) const QUEUE_TRIM_CODE: &str = concat!(
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
