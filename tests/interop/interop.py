"""The Python side of statehouse's interop suite (scripts/interop.sh).

Each step uses a real library as a Python service would, against the
redis-server the script started:

    python interop.py URL STEP [N]

Steps, per library (the Rust side is `cargo run -p statehouse-tests --bin
interop -- URL STEP`, with the same expectations):

- pydantic-state (hash models `{Class}:{id_}`):
  `pydantic-write` creates and assigns a model for statehouse to read;
  `pydantic-read` reads, through pydantic-state, the model statehouse wrote;
  `pydantic-race N` assigns field `py_writes` N times while statehouse
  modifies another field.
- krules-framework (subjects `s:{prefix}{subject}`, `p`/`e` fields of
  json.dumps text): `krules-write`, `krules-read`, and `krules-race N`,
  N atomic increments by KRules' callable `set` against statehouse's
  `set_with`.
- cledar-sdk (documents as JSON strings): `cledar-write`, `cledar-read`.

A failed expectation raises (exit status 1) naming the step and the value.
"""

import asyncio
import math
import os
import sys
from datetime import datetime, timezone
from enum import Enum

# Shared with the Rust side (tests/src/bin/interop/).
KRULES_PREFIX = "interop:"
CLEDAR_KEY = "Invoice:py-1"


def start_together(url, race):
    """The race's barrier: both sides announce they are ready, then wait for
    each other, so that their updates overlap."""
    import time

    import redis

    client = redis.Redis.from_url(url)
    key = f"interop:{race}:ready"
    client.incr(key)
    deadline = time.monotonic() + 30
    while int(client.get(key) or 0) < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"{race}: the Rust side never got ready")
        time.sleep(0.001)
    client.close()


def check(step, what, got, expected):
    """Fails the step unless `got` is `expected` (NaN equals NaN)."""
    same = got == expected or (
        isinstance(got, float) and isinstance(expected, float) and math.isnan(got) and math.isnan(expected)
    )
    if not same or type(got) is not type(expected):
        raise AssertionError(f"{step}: {what} is {got!r} ({type(got).__name__}), expected {expected!r}")


# --- pydantic-state -------------------------------------------------------


def pydantic_models(url):
    """The model classes; pydantic-state connects when imported, from
    STATE_MANAGER_REDIS_URL."""
    os.environ["STATE_MANAGER_REDIS_URL"] = url
    from pydantic_state import BaseRedisStateModel

    class Account(BaseRedisStateModel):
        """What a Python service writes: redis-py takes str, int and float."""

        owner: str = ""
        balance: int = 0
        rate: float = 0.0
        big: float = 0.0
        tiny: float = 0.0
        limit: float = 0.0
        py_writes: int = 0
        rust_writes: int = 0

    class Ledger(BaseRedisStateModel):
        """What statehouse writes for Python to read: booleans and lists too,
        which pydantic-state reads but redis-py cannot write."""

        owner: str = ""
        balance: int = 0
        rate: float = 0.0
        big: float = 0.0
        limit: float = 0.0
        nan: float = 0.0
        vip: bool = False
        tags: list[str] = []

    return Account, Ledger


def pydantic_write(url):
    Account, _ = pydantic_models(url)
    account = Account(
        id_="py-1",
        owner="Zoë 🎉",
        balance=-42,
        rate=0.25,
        big=1e20,
        tiny=1.5e-07,
        limit=float("-inf"),
    )
    # Attribute assignments: one HSET each.
    account.balance = 1_000_000_000_000
    account.rate = 3.0


def pydantic_read(url):
    _, Ledger = pydantic_models(url)
    step = "pydantic-read"
    # The key exists (statehouse wrote it), so nothing is written here. A
    # boolean or list that differs from the instance's own value would make
    # pydantic-state write it back, which redis-py refuses: construct the
    # instance with the values statehouse wrote (any other value would fail
    # the read loudly, so the check still reads Redis).
    ledger = Ledger(id_="rs-1", vip=True, tags=["a", "b c", "é"])
    check(step, "owner", ledger.owner, "Ada 🎉")
    check(step, "balance", ledger.balance, -7)
    check(step, "rate", ledger.rate, 0.1)
    check(step, "big", ledger.big, 1e16)
    check(step, "limit", ledger.limit, math.inf)
    check(step, "nan", ledger.nan, math.nan)
    check(step, "vip", ledger.vip, True)
    check(step, "tags", ledger.tags, ["a", "b c", "é"])


def pydantic_race(url, n):
    """Assigns `py_writes` 1..=n, staying at most a few assignments ahead of
    statehouse's modifies of `rust_writes` (which wait for Python's), so
    that the two interleave. Progress is read with a raw HGET: reading the
    attribute through pydantic-state would write the value it read back
    when it differs from the local copy, over statehouse's newer one."""
    import time

    import redis

    Account, _ = pydantic_models(url)
    account = Account(id_="race")
    raw = redis.Redis.from_url(url)
    start_together(url, "pydantic-race")
    deadline = time.monotonic() + 60
    for i in range(1, n + 1):
        while int(raw.hget("Account:race", "rust_writes") or 0) < i - 3:
            if time.monotonic() > deadline:
                raise AssertionError("pydantic-race: the Rust side stopped making progress")
            time.sleep(0.0005)
        account.py_writes = i
    raw.close()


# --- krules-framework -----------------------------------------------------


async def krules_subject(url, name):
    from dependency_injector import providers
    from krules_core.container import KRulesContainer
    from redis_subjects_storage.storage_impl import create_redis_client, create_redis_storage

    client = await create_redis_client(url)
    container = KRulesContainer()
    container.subject_storage.override(providers.Object(create_redis_storage(client, redis_prefix=KRULES_PREFIX)))
    return client, container.subject(name)


async def krules_write(url):
    client, user = await krules_subject(url, "user:py")
    await user.set("name", "Zoë 🎉")
    await user.set("age", 42)
    await user.set("score", 1e20)
    await user.set("tags", ["a", "é"])
    await user.set("profile", {"city": "Torino", "zip": None})
    await user.set_ext("origin", "krules")
    await user.store()
    await client.aclose()


async def krules_read(url):
    step = "krules-read"
    client, user = await krules_subject(url, "user:rs")
    check(step, "name", await user.get("name"), "Ada 🎉")
    check(step, "age", await user.get("age"), 36)
    check(step, "ratio", await user.get("ratio"), 0.1)
    check(step, "big", await user.get("big"), 1e16)
    check(step, "flags", await user.get("flags"), [True, False, None])
    check(step, "nested", await user.get("nested"), {"k": [1, 2.5]})
    check(step, "origin", await user.get_ext("origin"), "statehouse")
    await client.aclose()


async def krules_race(url, n):
    client, counter = await krules_subject(url, "counter")
    start_together(url, "krules-race")
    for _ in range(n):
        await counter.set("hits", lambda hits: (hits or 0) + 1, use_cache=False)
    await client.aclose()


# --- cledar-sdk -------------------------------------------------------------


def cledar_models():
    from pydantic import BaseModel

    class Status(Enum):
        DRAFT = "draft"
        PAID = "paid"

    class Line(BaseModel):
        sku: str
        qty: int

    class Invoice(BaseModel):
        id: str
        customer: str
        total: float
        status: Status
        issued: datetime
        lines: list[Line]
        note: str | None = None

    return Status, Line, Invoice


def cledar_service(url):
    from cledar.redis import RedisService, RedisServiceConfig

    return RedisService(RedisServiceConfig(redis_url=url))


def cledar_write(url):
    Status, Line, Invoice = cledar_models()
    invoice = Invoice(
        id="py-1",
        customer="Zoë 🎉",
        total=1e20,
        status=Status.PAID,
        issued=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        lines=[Line(sku="tea", qty=2)],
    )
    if not cledar_service(url).set(CLEDAR_KEY, invoice):
        raise AssertionError("cledar-write: set answered False")


def cledar_read(url):
    step = "cledar-read"
    Status, Line, Invoice = cledar_models()
    service = cledar_service(url)
    for key in ["Invoice:rs-1", "Invoice:rs-doc"]:
        invoice = service.get(key, Invoice)
        if invoice is None:
            raise AssertionError(f"{step}: nothing under {key}")
        check(step, f"{key} customer", invoice.customer, "Ada 🎉")
        check(step, f"{key} total", invoice.total, 0.1)
        check(step, f"{key} status", invoice.status, Status.DRAFT)
        check(step, f"{key} issued", invoice.issued, datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
        check(step, f"{key} lines", invoice.lines, [Line(sku="jam", qty=3)])
        check(step, f"{key} note", invoice.note, "from Rust")


STEPS = {
    "pydantic-write": pydantic_write,
    "pydantic-read": pydantic_read,
    "pydantic-race": pydantic_race,
    "krules-write": krules_write,
    "krules-read": krules_read,
    "krules-race": krules_race,
    "cledar-write": cledar_write,
    "cledar-read": cledar_read,
}


def main(argv):
    if len(argv) not in (3, 4) or argv[2] not in STEPS:
        sys.exit(f"usage: {argv[0]} URL {{{'|'.join(STEPS)}}} [N]")
    url, step = argv[1], STEPS[argv[2]]
    args = [int(argv[3])] if len(argv) == 4 else []
    result = step(url, *args)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    print(f"python {argv[2]}: ok")


if __name__ == "__main__":
    main(sys.argv)
