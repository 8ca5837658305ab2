//! The Lua scripts of the Redis adapter, in one place.
//!
//! A script runs inside the MULTI of a WATCH section (`txn::optimistic`)
//! when a write needs a decision Redis commands alone cannot take in one
//! atomic step, such as "set this TTL unless the key already lives longer".
//! Scripts are sent as `EVALSHA`; the WATCH loop loads them on a dedicated
//! connection before its first use and again after a `NOSCRIPT` answer (a
//! restarted or flushed server), so callers never see one. A script that
//! needs no WATCH (the tenant writes without a read, the tenant increment)
//! runs alone on the shared connection, through redis-rs'
//! `Script::invoke_async`, which sends `EVALSHA` and loads the script on
//! `NOSCRIPT`.
//!
//! Every script checks the types of all its keys before writing anything:
//! Redis does not roll a script back, so a `WRONGTYPE` halfway would leave a
//! partial write.

use std::sync::LazyLock;

use redis::{Cmd, Script};

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
/// field, value pairs. Run by `EVALSHA`, on the shared connection (redis-rs
/// loads it again on `NOSCRIPT`) or inside the WATCH loop's MULTI.
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
/// shared connection (redis-rs loads it again on `NOSCRIPT`).
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

/// The source of every script, for loading them on a connection.
const ALL: [&str; 3] = [TASK_WRITE_CODE, PRUNE_INDEX_CODE, TENANT_WRITE_CODE];

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

/// `SCRIPT LOAD` of every script, answers ignored.
pub(crate) fn load_all() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for code in ALL {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    pipe
}
