//! What every command shares: where results go ([`Output`]: text for
//! people, or one JSON document with `--json`), how a command fails
//! ([`CliError`], with the [`exit`] code convention of `--help`), and how
//! things are shown in messages (keys quoted as JSON strings, durations and
//! TTLs as people read them, store errors in plain words), plus Ctrl-C.
//!
//! Every command imports this module; no command imports another.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse::{ErrorKind, KeyStream, KeyTtl, Settings, StoreError};
use statehouse_domain::HumanDuration;
use statehouse_ports::JsonError;

/// The exit status of every command, also shown by `--help`.
pub mod exit {
    /// The command did what it was asked.
    pub const DONE: i32 = 0;
    /// A key the command needed does not exist (`doc get`, `doc ttl`,
    /// `doc del`, `model show`), or `doc set --if-absent` found one already there; nothing
    /// was changed.
    pub const NOT_FOUND: i32 = 1;
    /// Usage or input error: bad arguments, a bad JSON value, TTL, key,
    /// pattern or URL, a task status change the lifecycle forbids. Also
    /// clap's own parse errors.
    pub const USAGE: i32 = 2;
    /// The store failed (cannot connect, timeout, refused), or the stored
    /// data is not what the command needs (not JSON for `doc get`, another
    /// Redis type), or the output could not be written.
    pub const FAILED: i32 = 3;
    /// Ctrl-C stopped the command (the demo removes its keys first): 128 +
    /// SIGINT, as shells report it.
    pub const INTERRUPTED: i32 = 130;
}

/// The exit status table printed at the end of `--help`.
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  done
  1  not found: a key or task the command needed does not exist (doc get, doc ttl,
     doc del, tasks show/set-status/log/del, subject show/del, model show,
     tenant … get/NAME/PK, config get/history), or doc set --if-absent found it
     already there; nothing was changed
  2  usage or input error: bad arguments, bad JSON value, TTL, key, pattern or URL,
     or a task status change the lifecycle forbids (nothing written)
  3  failure: the store failed (cannot connect, timeout, refused), the stored data is
     not what the command needs (e.g. not JSON for doc get; --raw prints any bytes),
     config set --if-version found another version, or the output could not be written
  130  interrupted by Ctrl-C (the demo removes its keys first; watch and config watch
     close their subscription)";

/// A CLI failure: a store error, or a message of the CLI's own. Each has
/// its exit status ([`CliError::exit_code`], the table in [`exit`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store failed (shown in plain words, durations as people read
    /// them). Exit status by kind: not found 1, invalid input 2, any
    /// other 3.
    #[error("{}", describe(.0))]
    Store(#[from] StoreError),
    /// A key the command needed does not exist, or (`--if-absent`) already
    /// exists: nothing was changed (exit status 1).
    #[error("{0}")]
    NotFound(String),
    /// The input is not what the command needs (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// The command could not do its job: the stored data is not what it
    /// needs, a check of the demo failed (exit status 3).
    #[error("{0}")]
    Failed(String),
    /// Writing the output failed (exit status 3).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// Ctrl-C stopped the command, after it cleaned up (exit status 130).
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
}

impl CliError {
    /// The exit status for this failure; see [`exit`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Store(error) => match error.kind() {
                ErrorKind::NotFound => exit::NOT_FOUND,
                ErrorKind::InvalidInput | ErrorKind::Serialization | ErrorKind::InvalidTransition => {
                    exit::USAGE
                }
                _ => exit::FAILED,
            },
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Usage(_) => exit::USAGE,
            Self::Failed(_) | Self::Output(_) => exit::FAILED,
            Self::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// Where a command prints its results: text for people, or with `--json`
/// one compact JSON document for scripts. Every command prints through it,
/// so `--json` means the same everywhere:
///
/// - [`print`](Self::print): the command's result, as JSON or as text;
/// - [`say`](Self::say): narration for people, nothing with `--json`;
/// - [`json`](Self::json): a JSON result only, e.g. next to an error that
///   people read on stderr;
/// - [`bytes`](Self::bytes): data as it is, in both modes.
pub(crate) struct Output<'a> {
    out: &'a mut dyn Write,
    json: bool,
}

impl<'a> Output<'a> {
    /// Output to `out`, as JSON if `json`.
    pub(crate) fn new(out: &'a mut dyn Write, json: bool) -> Self {
        Self { out, json }
    }

    /// True with `--json`.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one line of compact JSON with `--json`, else the
    /// line `text`.
    pub(crate) fn print<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        text: impl fmt::Display,
    ) -> Result<(), CliError> {
        if self.json {
            self.json(value)
        } else {
            self.say(text)
        }
    }

    /// Prints the line `text` for people; nothing with `--json`.
    pub(crate) fn say(&mut self, text: impl fmt::Display) -> Result<(), CliError> {
        if !self.json {
            writeln!(self.out, "{text}")?;
        }
        Ok(())
    }

    /// Prints `value` as one line of compact JSON with `--json`; nothing
    /// without.
    pub(crate) fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CliError> {
        if self.json {
            let line = to_json(value)?;
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// Sends what was printed so far on its way (e.g. before a long wait).
    pub(crate) fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush()?;
        Ok(())
    }

    /// Writes `bytes` as they are, in both modes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.out.write_all(bytes)?;
        Ok(())
    }
}

impl fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// The store as `--json` output names it: URL (without its password),
/// prefix and backend.
#[derive(Debug, Serialize)]
pub(crate) struct StoreJson {
    url: String,
    prefix: String,
    backend: &'static str,
}

impl StoreJson {
    pub(crate) fn new(settings: &Settings, backend: &'static str) -> Self {
        Self {
            url: settings.redacted_url(),
            prefix: settings.prefix.clone(),
            backend,
        }
    }
}

/// The store as the CLI names it: the URL without its password, and the
/// key prefix if there is one.
pub(crate) fn store_name(settings: &Settings) -> String {
    if settings.prefix.is_empty() {
        settings.redacted_url()
    } else {
        format!(
            "{} (prefix {})",
            settings.redacted_url(),
            quoted(&settings.prefix)
        )
    }
}

/// `value` as compact JSON, for output.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, CliError> {
    serde_json::to_string(value).map_err(|error| CliError::Output(std::io::Error::other(error)))
}

/// `text`, a value given on the command line for `what` (e.g.
/// `config "api"`), decoded from JSON; if it is not JSON, a usage error
/// naming `what` and where the JSON broke (never quoting the text), with
/// `hint` (e.g. ` or pass --raw`) after the advice to quote text.
pub(crate) fn parse_json<T: DeserializeOwned>(text: &str, what: &str, hint: &str) -> Result<T, CliError> {
    serde_json::from_str(text).map_err(|error| {
        CliError::Usage(format!(
            "the value for {what} is not valid JSON ({}); quote text as '\"text\"'{hint}",
            JsonError::without_data(&error)
        ))
    })
}

/// `text` quoted as a JSON string: how the CLI shows keys, patterns and
/// other text inside messages (control characters escaped).
pub(crate) fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A duration as people read it: `42 ms`, `0.3 s`, `5 min 3 s`.
pub(crate) fn human_duration(duration: Duration) -> String {
    HumanDuration(duration).to_string()
}

/// A store error as the CLI shows it: the error's own message, with the
/// two parts written for programmers put in plain words: a timeout's bound
/// as a human duration, and the Rust type a value failed to decode as.
pub(crate) fn describe(error: &StoreError) -> String {
    let message = error.to_string();
    match error {
        StoreError::Timeout { after, .. } => {
            let bound = if after.is_zero() {
                "no answer in time".to_owned()
            } else {
                format!("no answer within {}", human_duration(*after))
            };
            message.replacen(&format!("no answer within {after:?}"), &bound, 1)
        }
        StoreError::Deserialization { expected, .. } => message.replacen(
            &format!("is not a valid {expected}"),
            &format!("is not {}", plain_type(expected)),
            1,
        ),
        _ => message,
    }
}

/// What a value of the Rust type `type_name` (from `std::any::type_name`)
/// is, in words: `valid JSON`, `a whole number`, `a valid User document`.
fn plain_type(type_name: &str) -> String {
    // The last path segment, without generic arguments: `a::b::User<X>` -> `User`.
    let base = type_name.split('<').next().unwrap_or(type_name);
    let name = base.rsplit("::").next().unwrap_or(base);
    match name {
        "Value" | "IgnoredAny" | "JSON value" => "valid JSON".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" => "true or false".to_owned(),
        "String" | "str" | "&str" => "a JSON string".to_owned(),
        "Vec" => "a JSON array".to_owned(),
        "HashMap" | "BTreeMap" => "a JSON object".to_owned(),
        "Option" => {
            let inner = type_name
                .split_once('<')
                .and_then(|(_, rest)| rest.strip_suffix('>'))
                .unwrap_or("");
            format!("null or {}", plain_type(inner))
        }
        _ => format!("a valid {name} document"),
    }
}

/// A key's remaining life in words: `expires in 0.3 s`, `no TTL`, `missing`.
pub(crate) fn ttl_in_words(ttl: KeyTtl) -> String {
    match ttl {
        KeyTtl::Missing => "missing".to_owned(),
        KeyTtl::Persistent => "no TTL".to_owned(),
        KeyTtl::ExpiresIn(left) => format!("expires in {}", human_duration(left)),
    }
}

/// Resolves on Ctrl-C; never, if the signal cannot be listened to. What
/// the demo and the watching commands stop on.
pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints a listing as it is fetched: each page is written and flushed as
/// soon as it arrives, so nothing waits in a buffer while the next page is
/// fetched, and memory stays flat however many keys match. Text: one key
/// per line. `--json`: one JSON array, streamed (`[` first, the keys as
/// their pages arrive, `]` last): the same compact document as a collected
/// list, valid once the command ends. Keys come in the store's order (hash
/// order on Redis), not sorted.
pub(crate) async fn print_stream(out: &mut Output<'_>, mut keys: KeyStream) -> Result<(), CliError> {
    let json = out.is_json();
    let mut line = Vec::new();
    let mut first = true;
    if json {
        out.bytes(b"[")?;
    }
    while let Some(page) = keys.next_page().await? {
        line.clear();
        for key in &page {
            if json {
                if !first {
                    line.push(b',');
                }
                serde_json::to_writer(&mut line, key).map_err(|error| CliError::Output(error.into()))?;
            } else {
                line.extend_from_slice(key.as_bytes());
                line.push(b'\n');
            }
            first = false;
        }
        out.bytes(&line)?;
        out.flush()?;
    }
    if json {
        out.bytes(b"]\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_named_in_plain_words() {
        assert_eq!(plain_type("serde_json::value::Value"), "valid JSON");
        assert_eq!(plain_type("JSON value"), "valid JSON");
        assert_eq!(plain_type("u64"), "a whole number (0 or more)");
        assert_eq!(plain_type("statehouse_cli::demo::User"), "a valid User document");
        assert_eq!(
            plain_type("core::option::Option<alloc::string::String>"),
            "null or a JSON string"
        );
        assert_eq!(
            plain_type("std::collections::HashMap<String, u32>"),
            "a JSON object"
        );
    }

    #[test]
    fn ttls_read_as_words() {
        assert_eq!(ttl_in_words(KeyTtl::Missing), "missing");
        assert_eq!(ttl_in_words(KeyTtl::Persistent), "no TTL");
        assert_eq!(
            ttl_in_words(KeyTtl::ExpiresIn(Duration::from_millis(300))),
            "expires in 0.3 s"
        );
    }

    #[test]
    fn store_errors_read_without_rust_internals() {
        let timeout = StoreError::Timeout {
            op: "get",
            key: "k".into(),
            after: Duration::from_millis(300),
        };
        assert_eq!(describe(&timeout), "get \"k\": no answer within 0.3 s");
        let decode = StoreError::deserialization("get", "k", "statehouse_cli::demo::User", "bad");
        assert_eq!(
            describe(&decode),
            "get \"k\": the stored value is not a valid User document: bad"
        );
    }
}
