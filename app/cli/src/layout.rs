//! `layout`: how statehouse lays out its Redis keys.

use serde::Serialize;
use statehouse::Settings;

use crate::output::{CliError, Output, quoted, store_name};

/// One family of keys.
#[derive(Debug, Serialize)]
struct Family {
    family: &'static str,
    redis_key: &'static str,
    #[serde(rename = "type")]
    redis_type: &'static str,
    notes: &'static str,
}

/// Every family statehouse stores; one row each.
const FAMILIES: &[Family] = &[
    Family {
        family: "documents",
        redis_key: "<prefix><key>",
        redis_type: "string",
        notes: "JSON value; key used verbatim (validated: 1-512 bytes, no control characters)",
    },
    Family {
        family: "tasks",
        redis_key: "<prefix>{<ns>:b<N>}:task:<id>",
        redis_type: "string",
        notes: "task record (JSON); <ns> the namespace (default tasks), <N> the task's bucket 0-15 (from its id); ids escaped (: -> %3A)",
    },
    Family {
        family: "tasks",
        redis_key: "<prefix>{<ns>:b<N>}:by-service:<service>",
        redis_type: "zset",
        notes: "ids of a service's tasks in bucket N, scored by update time (ms); listings merge the 16 buckets",
    },
    Family {
        family: "tasks",
        redis_key: "<prefix>{<ns>:b<N>}:by-user:<user>",
        redis_type: "zset",
        notes: "ids of a user's tasks in bucket N, scored by update time (ms); TTL refreshed with every write",
    },
    Family {
        family: "subjects",
        redis_key: "<prefix>s:<subject prefix><subject>",
        redis_type: "hash",
        notes: "KRules layout: field p<prop> (default) or e<prop> (extended), JSON as Python writes it; not escaped",
    },
    Family {
        family: "synced",
        redis_key: "<prefix><Type>:<id>",
        redis_type: "hash",
        notes: "synced model, hash layout (default, pydantic-state's): a field per model field; verbatim, not escaped; type names hold no ':'",
    },
    Family {
        family: "synced",
        redis_key: "<prefix><Type>:<id>",
        redis_type: "string",
        notes: "synced model, JSON layout: the model as one JSON document; load tells the layouts apart by type",
    },
    Family {
        family: "tenants",
        redis_key: "<prefix>t:{<tenant>}:user:<user>",
        redis_type: "hash",
        notes: "a tenant's user: one compact JSON value per field; {<tenant>} is the hash tag; ids escaped (: -> %3A)",
    },
    Family {
        family: "tenants",
        redis_key: "<prefix>t:{<tenant>}:handler:<user>:<handler>",
        redis_type: "hash",
        notes: "a handler's conversation state for a user; JSON per field",
    },
    Family {
        family: "tenants",
        redis_key: "<prefix>t:{<tenant>}:table:<table>:<pk>",
        redis_type: "hash",
        notes: "one row of a tenant table; JSON per field",
    },
    Family {
        family: "tenants",
        redis_key: "<prefix>t:{<tenant>}:state:<user>:<name>",
        redis_type: "hash",
        notes: "a user's shared state (scratch space of tools and agents); JSON per field",
    },
    Family {
        family: "triggers",
        redis_key: "<prefix>t:{<tenant>}:triggers:due",
        redis_type: "zset",
        notes: "<action>:<id> (escaped) by due time (ms, server clock); a claimed one by its lease end",
    },
    Family {
        family: "triggers",
        redis_key: "<prefix>t:{<tenant>}:triggers:claims",
        redis_type: "hash",
        notes: "<action>:<id> -> claim token; field # counts tokens",
    },
    Family {
        family: "triggers",
        redis_key: "<prefix>t:{<tenant>}:triggers:by-id:<id>",
        redis_type: "zset",
        notes: "the <action>:<id> members of one identifier",
    },
    Family {
        family: "queues",
        redis_key: "<prefix>t:{<tenant>}:queue:<service>:<batch>:<action>",
        redis_type: "list",
        notes: "waiting item ids, oldest first (queue-items: hash id -> JSON; queue-leases: zset id by lease end)",
    },
    Family {
        family: "queues",
        redis_key: "<prefix>t:{<tenant>}:queues:<service>",
        redis_type: "zset",
        notes: "<batch>:<action> of the tenant's non-empty queues of a service",
    },
    Family {
        family: "queues",
        redis_key: "<prefix>svc:{<service>}:pending",
        redis_type: "zset",
        notes: "tenants with queued work; the one cross-slot structure (MULTI with the push on one server)",
    },
    Family {
        family: "config",
        redis_key: "<prefix>config:<name>",
        redis_type: "string",
        notes: "versioned entry (JSON envelope: version, value, bounded history); name escaped",
    },
    Family {
        family: "changes",
        redis_key: "<prefix>statehouse:changes:<key>",
        redis_type: "channel",
        notes: "Pub/Sub channel of a key's announced changes: {\"kind\":\"set\",\"version\":3}; key verbatim",
    },
];

#[derive(Debug, Serialize)]
struct Layout<'a> {
    url: String,
    prefix: &'a str,
    families: &'a [Family],
}

pub(super) fn layout(settings: &Settings, out: &mut Output<'_>) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(&Layout {
            url: settings.redacted_url(),
            prefix: &settings.prefix,
            families: FAMILIES,
        });
    }
    let prefix = if settings.prefix.is_empty() {
        "(none)".to_owned()
    } else {
        quoted(&settings.prefix)
    };
    out.say("statehouse key layout (see docs/keys.md)")?;
    out.say(format_args!("store:  {}", store_name(settings)))?;
    out.say(format_args!(
        "prefix: {prefix}, put in front of every key and pattern"
    ))?;
    out.say("")?;
    out.say(format_args!(
        "{:<10} {:<38} {:<7} notes",
        "family", "redis key", "type"
    ))?;
    for family in FAMILIES {
        out.say(format_args!(
            "{:<10} {:<38} {:<7} {}",
            family.family, family.redis_key, family.redis_type, family.notes
        ))?;
    }
    Ok(())
}
