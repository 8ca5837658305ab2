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

use crate::conn::{Acks, Shared};
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

/// The end of a tenant script that wrote into an existing or new hash
/// (`kind`: the key's type before): the TTL in ms of `ARGV[3]` (0: keep
/// the expiry) set on a new hash, or extended but never shortened on one
/// that expires, as [`TENANT_WRITE`] does.
macro_rules! tenant_ttl {
    () => {
        r"
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local left = redis.call('PTTL', KEYS[1])
  if kind == 'none' or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
"
    };
}

/// `append_text(current, item)`: the JSON array text `current` with the
/// item's text put before its closing `]` (the text up to it kept as it
/// is), and the new length; `nil` if `current` is no JSON array. What the
/// memory store's `append_to_array` computes.
macro_rules! append_text {
    () => {
        r"
local function append_text(current, item)
  local open = string.find(current, '%S')
  local close = string.find(current, '%]%s*$')
  local ok, items = pcall(cjson.decode, current)
  if not ok or type(items) ~= 'table' or not open or string.sub(current, open, open) ~= '[' or not close then
    return nil
  end
  if #items == 0 then
    return '[' .. item .. string.sub(current, close), 1
  end
  return string.sub(current, 1, close - 1) .. ',' .. item .. string.sub(current, close), #items + 1
end
"
    };
}

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
pub const TENANT_INCREMENT_CODE: &str = concat!(
    r"
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
",
    tenant_ttl!(),
    "return value\n"
);

/// Appends an item to the JSON array in a tenant hash's field and applies
/// the TTL as [`TENANT_INCREMENT`] does, in one step: a missing or `null`
/// field becomes `[item]`; an array keeps its text up to the closing `]`
/// (the memory store's `append_to_field` writes the same bytes). A field
/// that holds no JSON array writes nothing, not even the TTL.
///
/// KEYS: the hash. ARGV: field, the item (JSON text), TTL in ms (0: keep
/// the expiry). Returns the new length. Errors: `WRONGTYPE …`,
/// `NOTARRAY …`. Run by `EVALSHA` on the shared connection ([`run_shared`]).
pub(crate) static TENANT_APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(TENANT_APPEND_CODE));

/// The source of `TENANT_APPEND`.
pub const TENANT_APPEND_CODE: &str = concat!(
    append_text!(),
    r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
local text, n
if not current or string.match(current, '^%s*null%s*$') then
  text, n = '[' .. ARGV[2] .. ']', 1
else
  text, n = append_text(current, ARGV[2])
  if not text then
    return redis.error_reply('NOTARRAY the field holds no JSON array')
  end
end
redis.call('HSET', KEYS[1], ARGV[1], text)
",
    tenant_ttl!(),
    "return n\n"
);

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

mod queues;
mod triggers;
pub use queues::*;
pub use triggers::*;

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

/// Appends an item to the JSON array held by a document, in one step:
/// a missing key becomes `[item]`; an existing one keeps its TTL
/// (`KEEPTTL`) and its text up to the closing `]` (the memory store's
/// `append_to_array` writes the same bytes). Checks the key's type first;
/// a document that is no JSON array writes nothing.
///
/// KEYS: the document. ARGV: the item (JSON text). Returns the new length.
/// Errors: `WRONGTYPE …`, `NOTARRAY …`. Run by `EVALSHA` on the shared
/// connection ([`run_shared`]).
pub(crate) static DOC_APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(DOC_APPEND_CODE));

/// The Lua source of the document append (for the benchmark's raw side).
pub const DOC_APPEND_CODE: &str = concat!(
    append_text!(),
    r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], '[' .. ARGV[1] .. ']')
  return 1
end
local text, n = append_text(current, ARGV[1])
if not text then
  return redis.error_reply('NOTARRAY the document holds no JSON array')
end
redis.call('SET', KEYS[1], text, 'KEEPTTL')
return n
"
);

/// The source of every script, for loading them on a connection.
const ALL: [&str; 20] = [
    TASK_WRITE_CODE,
    PRUNE_INDEX_CODE,
    TENANT_WRITE_CODE,
    TENANT_INCREMENT_CODE,
    TENANT_APPEND_CODE,
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
    DOC_APPEND_CODE,
];

/// `EVALSHA` of `script` with `keys` and `args`, for a pipeline. The
/// command is sized ahead for its arguments (keys and arguments of usual
/// lengths), as redis-rs' own `Script` sizes it, so that writing them
/// rarely grows it.
pub(crate) fn evalsha<K: redis::ToRedisArgs, A: redis::ToRedisArgs>(
    script: &Script,
    keys: &[K],
    args: A,
) -> Cmd {
    let data = 16 * args.num_of_args();
    evalsha_sized(script, keys, args, data)
}

/// [`evalsha`] of arguments whose bytes come to about `data` (values a
/// caller holds, e.g. a document and the one it replaces), so that writing
/// them does not grow the command again and again.
pub(crate) fn evalsha_sized<K: redis::ToRedisArgs, A: redis::ToRedisArgs>(
    script: &Script,
    keys: &[K],
    args: A,
    data: usize,
) -> Cmd {
    let hash = script.get_hash();
    let count = args.num_of_args();
    let mut cmd = Cmd::with_capacity(
        3 + keys.len() + count,
        "EVALSHA".len() + hash.len() + 4 + 64 * keys.len() + data + 8 * count,
    );
    cmd.arg("EVALSHA").arg(hash).arg(keys.len()).arg(keys).arg(args);
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
/// `ZADD NX`). Scripts write: their replicas are waited for as the
/// durability asks ([`Connections::writer`]); a script that only reads
/// runs through [`run_shared_read`].
pub(crate) async fn run_shared<T, F, Fut>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    call: F,
) -> Result<T, StoreError>
where
    F: FnMut(Shared) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    run_scripts(conns, op, key, call, true).await
}

/// [`run_shared`] for a script that only reads: no `WAIT` after it,
/// whatever the durability.
pub(crate) async fn run_shared_read<T, F, Fut>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    call: F,
) -> Result<T, StoreError>
where
    F: FnMut(Shared) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    run_scripts(conns, op, key, call, false).await
}

/// THE script runner: `call` on a writer's handle (its replicas waited for
/// as the durability asks) if `writes`, else on the shared connection.
async fn run_scripts<T, F, Fut>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    mut call: F,
    writes: bool,
) -> Result<T, StoreError>
where
    F: FnMut(Shared) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let handle = || {
        if writes {
            conns.writer()
        } else {
            (conns.shared(), Acks::default())
        }
    };
    let (conn, acks) = handle();
    match conns.run_raw(op, key, call(conn)).await? {
        Ok(value) => {
            conns.confirm(op, key, &acks)?;
            return Ok(value);
        }
        Err(error) if error::is_no_script(&error) => {}
        Err(error) => return Err(conns.map_shared(op, key, error)),
    }
    conns.load_scripts(op, key, &load_all()).await?;
    let (conn, acks) = handle();
    conns.run_write(acks, op, key, call(conn)).await
}

/// `SCRIPT LOAD` of every script, answers ignored.
pub(crate) fn load_all() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for code in ALL {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    pipe
}
