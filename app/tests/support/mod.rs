//! Test support shared by `secrets.rs` and `timeouts.rs` (and by the
//! CLI's `app/cli/tests/secrets.rs`): a fake Redis server on a loopback
//! port, random passwords in every URL form, and a capture of every log
//! line of the process.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use tracing_subscriber::fmt::format::FmtSpan;

/// A fake Redis server: answers `+PONG` to PING and `+OK` to any other
/// command, until a command named in `silent` (`"GET"`, `"CLIENT SETNAME"`)
/// arrives; from then on that connection reads everything and answers
/// nothing. [`FakeRedis::mute`] never answers at all.
pub struct FakeRedis {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeRedis {
    pub fn start(silent: &'static [&'static str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    thread::spawn(move || serve(stream, silent));
                }
            }
        });
        Self { addr, stop }
    }

    /// Accepts connections and never answers.
    pub fn mute() -> Self {
        Self::start(&["*"])
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One client connection: RESP arrays of bulk strings in, simple strings
/// out.
fn serve(stream: TcpStream, silent: &[&str]) {
    let Ok(mut replies) = stream.try_clone() else {
        return;
    };
    let mut requests = BufReader::new(stream);
    let mut answering = !silent.contains(&"*");
    while let Some(command) = read_command(&mut requests) {
        let name = command
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let full = match command.get(1) {
            Some(sub) => format!("{name} {}", sub.to_ascii_uppercase()),
            None => name.clone(),
        };
        if silent.contains(&name.as_str()) || silent.contains(&full.as_str()) {
            answering = false;
        }
        if answering {
            let reply: &[u8] = if name == "PING" { b"+PONG\r\n" } else { b"+OK\r\n" };
            if replies.write_all(reply).is_err() {
                return;
            }
        }
    }
}

/// `*N\r\n` then N times `$len\r\n<bytes>\r\n`; None at the end of the
/// stream or on anything else.
fn read_command(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut line = String::new();
    let mut read_line = |reader: &mut dyn BufRead| -> Option<String> {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    };
    let count: usize = read_line(reader)?.strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let len: usize = read_line(reader)?.strip_prefix('$')?.parse().ok()?;
        let mut bytes = vec![0; len + 2];
        reader.read_exact(&mut bytes).ok()?;
        bytes.truncate(len);
        args.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    Some(args)
}

/// xorshift64*: small, fast, reproducible from its seed.
pub struct Rng {
    state: u64,
    pub seed: u64,
}

impl Rng {
    /// Seeded from `STATEHOUSE_TEST_SEED` if set (to replay a failure),
    /// else at random.
    pub fn new() -> Self {
        let seed = std::env::var("STATEHOUSE_TEST_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        Self {
            state: seed | 1,
            seed,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The characters URLs give a meaning to; passwords get many of them.
const SPECIAL: &[u8] = b"/@:?#%&=+;[] ";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A random password, and the random run of 8 to 12 letters and digits
/// (a letter first) inside it that must never show.
pub struct Password {
    pub password: String,
    pub run: String,
}

/// `prefix + run + suffix`; the suffix is any printable ASCII, half of it
/// URL delimiters. With `network_safe`, the prefix holds only delimiters:
/// a password cut short by a `/`, `?` or `#` then never leaves a host name
/// made of letters or digits (`0` or `vm` would resolve to this machine),
/// only one that starts with the run.
pub fn password(rng: &mut Rng, network_safe: bool) -> Password {
    let char_of = |rng: &mut Rng, delimiters_only: bool| -> char {
        if delimiters_only || rng.below(2) == 0 {
            char::from(*rng.pick(SPECIAL))
        } else {
            char::from(b' ' + rng.below(95) as u8)
        }
    };
    let prefix: String = (0..rng.below(7)).map(|_| char_of(rng, network_safe)).collect();
    let mut run = String::new();
    run.push(char::from(*rng.pick(&ALNUM[..52])));
    for _ in 0..7 + rng.below(5) {
        run.push(char::from(*rng.pick(ALNUM)));
    }
    let suffix: String = (0..rng.below(7)).map(|_| char_of(rng, false)).collect();
    Password {
        password: format!("{prefix}{run}{suffix}"),
        run,
    }
}

/// Every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ways to write a password into a store URL: `{pw}` is the password
/// (as typed or percent-encoded), `{host}` a `host:port`.
pub const FORMS: &[&str] = &[
    "redis://user:{pw}@{host}/0",
    "redis://:{pw}@{host}",
    "redis://{pw}@{host}",
    "rediss://user:{pw}@{host}",
    "redis://{host}?password={pw}",
    "redis://{host}/0?protocol=resp2&pass={pw}",
    "redis://{host}/0?pass={pw}&db=1",
    "unix:///tmp/statehouse-secrets-none.sock?pass={pw}",
    "unix:///tmp/statehouse-secrets-none.sock?user=u&pass={pw}",
    "redis+unix:///tmp/statehouse-secrets-none.sock?db=1&pass={pw}",
    "unix:/tmp/statehouse-secrets-none.sock?pass={pw}",
    // Cluster node lists: the password once, before every node.
    "redis+cluster://user:{pw}@{host},{host}",
    "redis+cluster://:{pw}@{host},127.0.0.1:1/0",
    "rediss+cluster://user:{pw}@{host},{host}",
    "redis+cluster://{host},{host}?password={pw}",
    "redis+sentinel://user:{pw}@{host},{host}/mymaster",
    "redis+sentinel://:{pw}@{host},127.0.0.1:1/mymaster/1?sentinel_password={pw}",
    "redis+sentinel://{host}/mymaster?sentinel_username=u&sentinel_password={pw}",
    "rediss+sentinel://:{pw}@{host}/mymaster/0",
    // Malformed: no host, a bad port or db, a bad scheme, no URL at all.
    "redis://user:{pw}@",
    "redis://user:{pw}@{host}x",
    "redis://user:{pw}@{host}/db",
    "redis:user:{pw}@{host}",
    "REDIS://:{pw}@{host}",
    " redis://:{pw}@{host}",
    "redis//:{pw}@{host}",
    "{pw}",
];

/// A URL of `form` with a random password; `host` fills `{host}`.
pub struct Case {
    pub url: String,
    pub run: String,
    pub form: &'static str,
}

pub fn case(rng: &mut Rng, host: &str, network_safe: bool) -> Case {
    let form = *rng.pick(FORMS);
    let Password { password, run } = password(rng, network_safe);
    let written = if rng.below(3) == 0 {
        percent_encode(&password)
    } else {
        password
    };
    Case {
        url: form.replace("{host}", host).replace("{pw}", &written),
        run,
        form,
    }
}

/// `error` as every output shows it: `Display`, `Debug`, and each source's
/// `Display` and `Debug`.
pub fn rendered(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(&format!("\n{next}\n{next:?}"));
        source = next.source();
    }
    text
}

/// Asserts that `shown` (what `what` printed) does not hold the password's
/// run of `case`; the message says how to replay the case.
pub fn assert_hidden(seed: u64, case: &Case, what: &str, shown: &str) {
    assert!(
        !shown.contains(&case.run),
        "the password's run {run:?} shows in {what} (form {form:?}, url {url:?}, seed {seed}; \
         replay with STATEHOUSE_TEST_SEED={seed}):\n{shown}",
        run = case.run,
        form = case.form,
        url = case.url,
    );
}

/// What the process logged, shared with the subscriber's writer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Asserts that the log holds the spans of store calls (a ping at
    /// least), and none of the passwords of `cases`.
    pub fn assert_spans_hide(&self, seed: u64, cases: &[Case]) {
        let log = self.text();
        assert!(
            log.contains("op=\"ping\""),
            "the call spans were not captured:\n{log}"
        );
        for case in cases {
            assert_hidden(seed, case, "the log", &log);
        }
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged at any level, by any target, in this process (the
/// subscriber is installed by the first call: process-global, so each test
/// binary that logs is its own).
pub fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}
