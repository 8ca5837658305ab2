//! THE one redaction of store URLs: what of a URL may show in errors, logs,
//! spans, `Debug` and `Display` ([`redact_url`]), and which secrets a URL
//! carries, so that text from elsewhere (a redis-rs error) can be checked
//! for them ([`Secrets`]).
//!
//! redis-rs takes a password from the user info (`redis://user:pw@host`,
//! `redis://:pw@host`, a lone `redis://pw@host`) or from the query
//! (`unix:///path?user=u&pass=pw`). Passwords often hold characters a URL
//! gives a meaning to (`/ ? # @ : & =`), unencoded: then neither a URL
//! parser nor a person can say where the password ends. The rule here is
//! to hide every part of the text that could belong to a password,
//! over-redacting rather than leaking:
//!
//! - A URL that does not start with a known scheme (`redis:`, `rediss:`,
//!   `unix:`, `redis+unix:`, `redis+cluster:`, `rediss+cluster:`,
//!   `redis+sentinel:`, `rediss+sentinel:`,
//!   `valkey…`, `memory:`, `custom:`, any case) is hidden whole: it may be
//!   a password pasted where a URL belongs.
//! - User info: everything between the scheme and the *last* `@` of the
//!   whole URL, user name included.
//! - A port that is not a number (`redis://:pw` without a host, a password
//!   with a `/`): from the port on, everything; in a cluster URL's node
//!   list (`h1:p1,h2:p2`), each node's port.
//! - Query: parameters are shown only while they are `db` or `protocol`;
//!   from the value of the first other parameter (`pass`, `password`,
//!   `user`, a token, anything) on, everything, fragment included.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// What replaces each hidden part of a URL.
const MASK: &str = "***";

/// Schemes whose URLs are shown redacted; anything else is hidden whole.
/// `memory` and `custom` are statehouse's own (an embedded store, injected
/// ports).
const KNOWN_SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
    "unix",
    "valkey",
    "valkeys",
    "valkey+unix",
    "memory",
    "custom",
];

/// Query parameters whose values are shown: redis-rs reads these, and they
/// are no secrets. Every other one may be (`pass`, `password`, `token`, …).
const SHOWN_PARAMETERS: &[&str] = &["db", "protocol"];

/// Fragments of a secret shorter than this are not searched for in other
/// text (see [`Secrets`]): they would match ordinary words.
const MIN_PIECE: usize = 3;

/// The URL with its password, and everything that could be part of it,
/// replaced by `***`: user info (user name included), a query from its
/// first parameter other than `db` and `protocol` on, a port that is not a
/// number. A URL without a known scheme shows as `***` alone. The one
/// redaction behind every error, log line, span, `Debug` and `Display` of
/// statehouse.
///
/// ```
/// use statehouse_redis::redact_url;
///
/// assert_eq!(redact_url("redis://user:s3cr/3t@db:6379/0"), "redis://***@db:6379/0");
/// assert_eq!(redact_url("unix:///run/redis.sock?db=1&pass=s3cret"), "unix:///run/redis.sock?db=1&pass=***");
/// assert_eq!(redact_url("redis://db:6379/2?protocol=resp3"), "redis://db:6379/2?protocol=resp3");
/// assert_eq!(redact_url("s3cret"), "***");
/// ```
pub fn redact_url(url: &str) -> String {
    let hidden = hidden_parts(url);
    let mut shown = String::with_capacity(url.len());
    let mut at = 0;
    for part in &hidden {
        shown.push_str(&url[at..part.start]);
        shown.push_str(MASK);
        at = part.end;
    }
    shown.push_str(&url[at..]);
    shown
}

/// A URL's text after `scheme://` split into its user info (without the
/// `@`) and the rest: THE one reading of where the user info of a cluster
/// or Sentinel URL ends, shared by their parsers and the settings. It runs
/// to the last `@` before the first `?` or `#`: a password may hold `@`,
/// `/`, `:` and `,` unencoded, but a `?` or `#` in it must be
/// percent-encoded (as redis-rs reads `redis://` URLs too), so an `@` in
/// the query (`sentinel_password=a@b`) or the fragment is never taken for
/// the end of the user info.
///
/// A URL that an unencoded `?` or `#` in a password would make read
/// otherwise, an `@` after the first `?`/`#` followed by what reads as a
/// host list (`:pw?x@h1:1,h2:2/svc`, `h:1/svc?sentinel_password=x@abc`),
/// is refused with a reason that quotes nothing of it: either reading could
/// show part of a password as a host name.
///
/// ```text
/// ":p@w/d@h1:1,h2:2/svc?sentinel_password=x@]"  ->  (":p@w/d", "h1:1,h2:2/svc?sentinel_password=x@]")
/// "h1:1/svc?sentinel_password=x%40y"            ->  (none, "h1:1/svc?sentinel_password=x%40y")
/// "h1:1/svc?sentinel_password=x@y"              ->  refused
/// ```
pub(crate) fn split_userinfo(body: &str) -> Result<(Option<&str>, &str), &'static str> {
    let before_query = body.find(['?', '#']).unwrap_or(body.len());
    if body[before_query..]
        .match_indices('@')
        .any(|(at, _)| reads_as_hosts(body, before_query + at + 1))
    {
        return Err(
            "the URL reads two ways: an `@` after its `?` or `#` is followed by a host \
                    (percent-encode `?`, `#` and `@` in passwords: %3F, %23, %40)",
        );
    }
    Ok(match body[..before_query].rfind('@') {
        Some(at) => (Some(&body[..at]), &body[at + 1..]),
        None => (None, body),
    })
}

/// Whether `host` (of `host:port`, IPv6 in brackets) can name a host: a
/// name or an address, nothing a URL gives a meaning to. A sentinel or node
/// address that is not one comes from a malformed URL (a password cut
/// short) and is refused without being shown.
pub(crate) fn is_host(host: &str) -> bool {
    let allowed = |inner: &str, extra: &[u8]| {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_%".contains(&b) || extra.contains(&b))
    };
    match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').is_some_and(|inner| allowed(inner, b":")),
        None => allowed(host, b""),
    }
}

/// The byte ranges of `url` that [`redact_url`] hides: sorted, disjoint,
/// not touching, none empty.
fn hidden_parts(url: &str) -> Vec<Range<usize>> {
    let everything = merge(std::iter::once(0..url.len()).collect());
    let Some(colon) = url.find(':') else {
        return everything;
    };
    if !KNOWN_SCHEMES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(&url[..colon]))
    {
        return everything;
    }
    let has_authority = url[colon + 1..].starts_with("//");
    let body = if has_authority { colon + 3 } else { colon + 1 };

    // User info: where it ends is a guess when a password holds an
    // unencoded `@` (a person may mean it so) and the query holds one too
    // (`sentinel_password=`). Both readings are hidden, so either one being
    // right is enough: up to the last `@`, wherever it is; and up to the
    // first `@` followed by what reads as a host list.
    let last = url[body..].rfind('@').map(|at| body + at);
    let mut hidden = hidden_after(url, colon, body, has_authority, last);
    let first = url[body..]
        .match_indices('@')
        .map(|(at, _)| body + at)
        .find(|&at| reads_as_hosts(url, at + 1));
    if first.is_some() && first != last {
        hidden.extend(hidden_after(url, colon, body, has_authority, first));
    }
    merge(hidden)
}

/// Whether the text of `url` from `start` to the next `/`, `?`, `#` or the
/// end reads as a host list (`host[:port]`, comma separated; names,
/// addresses and `[v6]` only).
fn reads_as_hosts(url: &str, start: usize) -> bool {
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let hosts = &url[start..end];
    !hosts.is_empty()
        && hosts
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:,[]%".contains(&b))
}

/// The parts of `url` to hide if its user info ends at the `@` at `at`
/// (none: no user info).
fn hidden_after(
    url: &str,
    colon: usize,
    body: usize,
    has_authority: bool,
    at: Option<usize>,
) -> Vec<Range<usize>> {
    let mut hidden = Vec::new();
    let host = match at {
        Some(at) => {
            hidden.push(body..at);
            at + 1
        }
        None => body,
    };

    // A port that is not a number: a password cut short by a `/`, `?` or
    // `#`, or `redis://:pw` without a host.
    // A cluster URL lists nodes separated by commas: each is checked.
    if has_authority {
        let end = url[host..].find(['/', '?', '#']).map_or(url.len(), |i| host + i);
        let scheme = url[..colon].to_ascii_lowercase();
        let cluster = scheme.ends_with("+cluster") || scheme.ends_with("+sentinel");
        let mut node_start = host;
        for node in url[host..end].split(if cluster { ',' } else { '\0' }) {
            let after_host = if node.starts_with('[') {
                node.find(']').map_or(node.len(), |close| close + 1)
            } else {
                node.find(':').unwrap_or(node.len())
            };
            let port = &node[after_host..];
            let numeric = port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
            if !numeric {
                let from = node_start + after_host + usize::from(port.starts_with(':'));
                hidden.push(from..url.len());
                break;
            }
            node_start += node.len() + 1;
        }
    }

    // Query: shown while its parameters are known harmless; from the first
    // other one on, hidden to the end (a password may hold `&` or `#`).
    // Looked for from the start of the authority (a `?` cutting a password
    // short) and again after the user info (a `?` inside a password is not
    // the query): each query found is checked.
    let questions = [
        url[body..].find('?').map(|i| body + i),
        url[host..].find('?').map(|i| host + i),
    ];
    for question in questions.into_iter().flatten() {
        let query_start = question + 1;
        let query_end = url[query_start..]
            .find('#')
            .map_or(url.len(), |i| query_start + i);
        let mut start = query_start;
        while start < query_end {
            let end = url[start..query_end]
                .find(['&', ';'])
                .map_or(query_end, |i| start + i);
            let parameter = &url[start..end];
            if !parameter.is_empty() {
                let (name, value_start) = match parameter.find('=') {
                    Some(eq) => (&parameter[..eq], Some(start + eq + 1)),
                    None => (parameter, None),
                };
                let decoded = decode(&name.replace('+', " ")).to_ascii_lowercase();
                if !SHOWN_PARAMETERS.contains(&decoded.as_str()) {
                    let plain_name = !name.is_empty()
                        && name.len() <= 32
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                    let from = match value_start {
                        Some(value) if plain_name => value,
                        _ => start,
                    };
                    hidden.push(from..url.len());
                    break;
                }
            }
            start = end + 1;
        }
    }

    // The only fragment Redis URLs use is redis-rs' `#insecure`; any other
    // `#` after the user info is a password cut short, hidden to the end.
    if let Some(hash) = url[host..].find('#')
        && &url[host + hash..] != "#insecure"
    {
        hidden.push(host + hash..url.len());
    }
    hidden
}

/// Sorts `ranges` and joins overlapping or touching ones; drops empty ones.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.retain(|range| !range.is_empty());
    ranges.sort_by_key(|range| range.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Percent-decoding, lossy: `%41` becomes `A`, a `%` without two hex digits
/// stays, invalid UTF-8 becomes U+FFFD.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits are at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The secrets a URL carries: every part [`redact_url`] hides, as written
/// and percent-decoded, and each fragment of it between URL delimiters
/// (`: @ / ? # & ; = , [ ]` and spaces) of at least three characters. Text that contains one
/// of them (a redis-rs error message) must not be shown as it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The secrets of `url`.
    pub(crate) fn of(url: &str) -> Self {
        let forms = |text: &str| -> [String; 3] {
            [
                text.to_owned(),
                decode(text).into_owned(),
                decode(&text.replace('+', " ")).into_owned(),
            ]
        };
        let mut secrets: Vec<String> = Vec::new();
        let mut add = |text: String| {
            if text.trim().chars().count() >= MIN_PIECE && !secrets.contains(&text) {
                secrets.push(text);
            }
        };
        for part in hidden_parts(url) {
            for form in forms(&url[part]) {
                for piece in form.split([':', '@', '/', '?', '#', '&', ';', '=', ',', '[', ']', ' ']) {
                    forms(piece).into_iter().for_each(&mut add);
                }
                add(form);
            }
        }
        Self(secrets)
    }

    /// Whether there is nothing to look for.
    /// The secrets of every URL in `urls`.
    pub(crate) fn of_all<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all = Vec::new();
        for url in urls {
            all.extend(Self::of(url).0);
        }
        all.sort();
        all.dedup();
        Self(all)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `text` shows any of the secrets.
    pub(crate) fn found_in(&self, text: &str) -> bool {
        self.0.iter().any(|secret| text.contains(secret.as_str()))
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_what_is_safe_and_hides_the_rest() {
        for (url, shown) in [
            // Reported: a `/` in the password, passwords in the query.
            ("redis://user:s3cr/3tpw@127.0.0.1:1", "redis://***@127.0.0.1:1"),
            ("unix:///tmp/x.sock?pass=SECRET", "unix:///tmp/x.sock?pass=***"),
            (
                "redis+unix:///tmp/x.sock?db=1&pass=SECRET",
                "redis+unix:///tmp/x.sock?db=1&pass=***",
            ),
            (
                "unix:///tmp/x.sock?user=u&pass=SECRET",
                "unix:///tmp/x.sock?user=***",
            ),
            (
                "redis://127.0.0.1:1?password=SECRET",
                "redis://127.0.0.1:1?password=***",
            ),
            // User info, any characters.
            ("redis://:pw@host:6379/0", "redis://***@host:6379/0"),
            ("redis://user:pw@host", "redis://***@host"),
            ("rediss://token@host", "rediss://***@host"),
            ("redis://user:p@ss@host/1", "redis://***@host/1"),
            ("redis://u:a#b/c@host:1/2", "redis://***@host:1/2"),
            // An `@` in the password and another in the query (found by
            // the property test, seed 6132371283260936143): both readings
            // of the user info are hidden (over-redacted, never a leak).
            (
                "redis+sentinel://:@&BQM5zJUAL?#@127.0.0.1:6390,127.0.0.1:1/mymaster/1?sentinel_password=@&BQM5zJUAL?#",
                "redis+sentinel://***",
            ),
            (
                "redis+sentinel://:pw@h:1/svc?sentinel_password=x@abc",
                "redis+sentinel://***",
            ),
            // A `?` starts a query, wherever it is: over-redacted (redis-rs
            // would not connect to `host` either).
            ("redis://u:a?b@host:1/2", "redis://***"),
            ("redis://u:p%40ss%2F@host", "redis://***@host"),
            ("redis://@host", "redis://@host"),
            ("REDIS://u:pw@host", "REDIS://***@host"),
            ("redis:u:pw@host", "redis:***@host"),
            ("redis:/u:pw@host", "redis:***@host"),
            // An `@` in a query value still ends "user info": over-redacted.
            ("unix:///p?user=me@x&pass=pw", "unix://***"),
            // No host: a port that is not a number is hidden.
            ("redis://:pw", "redis://:***"),
            ("redis://u:pw", "redis://u:***"),
            // Without an `@` nothing marks a password: host `u`, port 12, db `pw`.
            ("redis://u:12/pw", "redis://u:12/pw"),
            ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
            ("redis://[::1]x/0", "redis://[::1]***"),
            // Query: db and protocol shown, anything else hidden to the end.
            ("redis://host/0?protocol=resp3", "redis://host/0?protocol=resp3"),
            ("unix:///s?db=2&protocol=3", "unix:///s?db=2&protocol=3"),
            ("unix:///s?pass=a&b#c&db=1", "unix:///s?pass=***"),
            ("unix:///s?%70ass=pw", "unix:///s?***"),
            ("unix:///s?p%61ss=pw&db=1", "unix:///s?***"),
            ("unix:///s?%64b=1&pass=pw", "unix:///s?%64b=1&pass=***"),
            ("unix:///s?secret", "unix:///s?***"),
            ("unix:///s?db=1;token=x", "unix:///s?db=1;token=***"),
            ("rediss://host/#insecure", "rediss://host/#insecure"),
            ("rediss://host/#insecure?pass=pw", "rediss://host/***"),
            ("unix:/tmp/x.sock?pass=pw", "unix:/tmp/x.sock?pass=***"),
            // Cluster node lists: each node's port is checked.
            (
                "redis+cluster://u:pw@h1:7000,h2:7001,[::1]:7002/0",
                "redis+cluster://***@h1:7000,h2:7001,[::1]:7002/0",
            ),
            (
                "rediss+cluster://:p,w@h1:1,h2:2",
                "rediss+cluster://***@h1:1,h2:2",
            ),
            ("redis+cluster://h1:1,h2:pw/x", "redis+cluster://h1:1,h2:***"),
            ("redis+cluster://h1:1,u:pw", "redis+cluster://h1:1,u:***"),
            (
                "redis+sentinel://u:pw@s1:26379,s2:26380/mymaster/2?sentinel_username=su&sentinel_password=sp",
                "redis+sentinel://***@s1:26379,s2:26380/mymaster/2?sentinel_username=***",
            ),
            (
                "rediss+sentinel://s1:1,s2:pw/svc",
                "rediss+sentinel://s1:1,s2:***",
            ),
            (
                "REDIS+CLUSTER://:pw@h:1?password=pw",
                "REDIS+CLUSTER://***@h:1?password=***",
            ),
            // Nothing secret.
            ("redis://host:6379", "redis://host:6379"),
            ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
            ("memory://", "memory://"),
            ("custom://", "custom://"),
            ("", ""),
            // No known scheme: hidden whole.
            ("not a url", "***"),
            ("s3cret", "***"),
            ("postgres://u:secret@db", "***"),
            (" redis://u:pw@host", "***"),
            ("s3cret://x@host", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secrets_are_the_hidden_parts_and_their_fragments() {
        // A password holding `&protocol=`: redis-rs reads a protocol
        // parameter, and its error message quotes the value.
        let secrets = Secrets::of("unix:///s?db=1&pass=ab&protocol=xyz");
        assert!(secrets.found_in("Invalid protocol version - InvalidClientConfig: xyz"));
        let secrets = Secrets::of("redis://u:p%40ss+word@host");
        assert!(secrets.found_in("p@ss word"));
        assert!(secrets.found_in("p@ss+word"));
        assert!(secrets.found_in("bad password p%40ss+word!"));
        assert!(!secrets.found_in("Connection refused (os error 111)"));
        assert!(Secrets::of("redis://host:6379/0?protocol=3").is_empty());
        assert!(Secrets::of("redis://:a@host").is_empty(), "too short to look for");
        assert!(!format!("{:?}", Secrets::of("redis://:hunter2@h")).contains("hunter2"));
    }

    #[test]
    fn decode_is_lossy_and_total() {
        assert_eq!(decode("a%41%2f%zz%4"), "aA/%zz%4");
        assert_eq!(decode("%ff"), "\u{fffd}");
        assert_eq!(decode("plain"), "plain");
    }
}
