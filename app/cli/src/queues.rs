//! `triggers TENANT [--due]`, `triggers set TENANT ACTION ID DELAY`,
//! `triggers due [--limit N]` (the due index across tenants),
//! `queue TENANT SERVICE BATCH ACTION [--peek N]`, `queue pending SERVICE`:
//! expiration triggers and batch queues from the command line.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use statehouse::{Queues, Triggers};

use crate::output::{CliError, Output, human_duration, quoted};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct TriggersArgs {
    #[command(subcommand)]
    command: Option<TriggersCommand>,
    /// The tenant whose triggers to list, earliest first.
    #[arg(required = true)]
    tenant: Option<String>,
    /// Only the triggers due now (claimed by a listener or waiting for one).
    #[arg(long)]
    due: bool,
}

#[derive(Debug, Subcommand)]
pub(super) enum TriggersCommand {
    /// Set (or move) the trigger ACTION ID of TENANT to fire after DELAY
    /// (e.g. 90s, 5m, 1h, 250ms; a bare number is seconds).
    Set {
        /// The tenant.
        tenant: String,
        /// What to do, e.g. remind.
        action: String,
        /// What it is about, e.g. user-123.
        id: String,
        /// When, from now.
        #[arg(value_parser = parse_delay)]
        delay: Duration,
    },
    /// The due index across tenants: the tenants with pending triggers,
    /// each with its earliest due time, earliest first (a tenant an
    /// all-tenants listener is serving shows the end of its lease). A
    /// tenant named "due" or "set" is listed with `triggers -- due`.
    Due {
        /// Show at most N tenants.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct QueueArgs {
    #[command(subcommand)]
    command: Option<QueueCommand>,
    /// TENANT SERVICE BATCH ACTION: the queue whose length to show.
    #[arg(required = true, num_args = 4, value_names = ["TENANT", "SERVICE", "BATCH", "ACTION"])]
    queue: Vec<String>,
    /// Also show the oldest N waiting items (left in place).
    #[arg(long, value_name = "N")]
    peek: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub(super) enum QueueCommand {
    /// The tenants with queued work for SERVICE, oldest first.
    Pending {
        /// The service.
        service: String,
    },
}

/// A delay as `250ms`, `90s`, `5m`, `1h`, `2d` or bare seconds.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is no delay: use e.g. 250ms, 90s, 5m, 1h"))?;
    let millis = match unit {
        "ms" => Some(number),
        "" | "s" => number.checked_mul(1000),
        "m" | "min" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        "d" => number.checked_mul(86_400_000),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m, h or d")),
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long a delay"))
}

pub(super) async fn triggers(
    triggers: &Triggers,
    args: TriggersArgs,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    match (args.command, args.tenant) {
        (
            Some(TriggersCommand::Set {
                tenant,
                action,
                id,
                delay,
            }),
            _,
        ) => {
            triggers.set(&tenant, &action, &id, delay).await?;
            #[derive(Serialize)]
            struct Set<'a> {
                tenant: &'a str,
                action: &'a str,
                id: &'a str,
                delay_ms: u128,
            }
            out.print(
                &Set {
                    tenant: &tenant,
                    action: &action,
                    id: &id,
                    delay_ms: delay.as_millis(),
                },
                format_args!(
                    "trigger {} {} of tenant {} fires in {}",
                    quoted(&action),
                    quoted(&id),
                    quoted(&tenant),
                    human_duration(delay)
                ),
            )
        }
        (Some(TriggersCommand::Due { limit }), _) => due_index(triggers, limit, out).await,
        (None, Some(tenant)) => {
            let list = if args.due {
                triggers.due(&tenant).await?
            } else {
                triggers.list(&tenant).await?
            };
            if out.is_json() {
                return out.json(&list);
            }
            if list.is_empty() {
                return out.say(format_args!(
                    "no {}triggers for tenant {}",
                    if args.due { "due " } else { "" },
                    quoted(&tenant)
                ));
            }
            out.say("DUE AT (UTC)              STATE    ACTION  ID")?;
            for trigger in &list {
                out.say(format_args!(
                    "{:<25} {:<8} {}  {}",
                    trigger.due_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    if trigger.claimed { "claimed" } else { "waiting" },
                    quoted(&trigger.action),
                    quoted(&trigger.id)
                ))?;
            }
            Ok(())
        }
        (None, None) => Err(CliError::Usage("triggers needs a TENANT".to_owned())),
    }
}

/// `triggers due`: the first `limit` tenants of the due index, with their
/// times as UTC and as a distance from now (by this machine's clock).
async fn due_index(triggers: &Triggers, limit: usize, out: &mut Output<'_>) -> Result<(), CliError> {
    if limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".to_owned()));
    }
    let tenants = triggers.index(limit).await?;
    if out.is_json() {
        return out.json(&tenants);
    }
    if tenants.is_empty() {
        return out.say("no tenant has pending triggers");
    }
    let now = Utc::now();
    out.say("DUE AT (UTC)              WHEN            TENANT")?;
    for entry in &tenants {
        let when = match (entry.due_at - now).to_std() {
            Ok(ahead) if ahead >= Duration::from_millis(1) => format!("in {}", human_duration(ahead)),
            _ => match (now - entry.due_at).to_std() {
                Ok(behind) if behind >= Duration::from_millis(1) => {
                    format!("{} ago", human_duration(behind))
                }
                _ => "now".to_owned(),
            },
        };
        out.say(format_args!(
            "{:<25} {:<15} {}",
            entry.due_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            when,
            quoted(&entry.tenant)
        ))?;
    }
    if tenants.len() == limit {
        out.say(format_args!("(the first {limit}; --limit N shows more)"))?;
    }
    Ok(())
}

pub(super) async fn queue(queues: &Queues, args: QueueArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    if let Some(QueueCommand::Pending { service }) = args.command {
        let tenants = queues.pending(&service).await?;
        if out.is_json() {
            return out.json(&tenants);
        }
        if tenants.is_empty() {
            return out.say(format_args!("no tenant has queued work for {}", quoted(&service)));
        }
        for tenant in &tenants {
            out.say(tenant)?;
        }
        return Ok(());
    }
    let [tenant, service, batch, action] = args.queue.as_slice() else {
        return Err(CliError::Usage(
            "queue needs TENANT SERVICE BATCH ACTION".to_owned(),
        ));
    };
    let q = queues.queue(service, batch, action)?;
    let len = queues.len(tenant, &q).await?;
    let items = match args.peek {
        Some(n) => queues.range::<Value>(tenant, &q, 0, n).await?,
        None => Vec::new(),
    };
    if out.is_json() {
        #[derive(Serialize)]
        struct Item {
            id: u64,
            value: Value,
        }
        #[derive(Serialize)]
        struct Queue {
            len: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            items: Option<Vec<Item>>,
        }
        let items = args.peek.map(|_| {
            items
                .into_iter()
                .map(|item| Item {
                    id: item.id,
                    value: item.value,
                })
                .collect()
        });
        return out.json(&Queue { len, items });
    }
    out.say(format_args!(
        "{len} item(s) waiting in {}/{}/{} of tenant {}",
        quoted(service),
        quoted(batch),
        quoted(action),
        quoted(tenant)
    ))?;
    for item in &items {
        out.say(format_args!("{:>8}  {}", item.id, item.value))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_delay;
    use std::time::Duration;

    #[test]
    fn delays_read_as_people_write_them() {
        assert_eq!(parse_delay("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_delay("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_delay("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_delay("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_delay("soon").is_err());
        assert!(parse_delay("5y").is_err());
    }
}
