//! No password ever shows in the CLI's stdout and stderr, nor in what it
//! logs: random passwords (every printable ASCII character, raw or
//! percent-encoded) in every URL form, on a refused connection and on a
//! server that says OK to anything. (Redaction, `Debug`/`Display` and the
//! library's connect errors: `app/tests/secrets.rs`, whose case generator
//! this shares.)
//!
//! A failure prints its seed: `STATEHOUSE_TEST_SEED=<seed>` replays it.
//!
//! Its own test binary: the tracing subscriber is process-global.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

#[path = "../../tests/support/mod.rs"]
mod support;

use support::{FakeRedis, Rng, assert_hidden, case, log};

/// Cases run through the CLI (each connects: refused, or to the fake server).
const CASES: usize = 300;

#[test]
fn cli_output_and_logs_never_show_a_password() {
    let log = log();
    // A third of the cases reach a server (one that says OK to anything,
    // AUTH included): then the CLI's success output and the call spans are
    // checked too. The demo runs only where the connection is refused.
    let fake = FakeRedis::start(&[]);
    let mut rng = Rng::new();
    let seed = rng.seed;
    let mut cases = Vec::with_capacity(CASES);
    let mut answered = 0;
    for i in 0..CASES {
        let reachable = i % 3 == 0;
        let host = if reachable {
            fake.addr()
        } else {
            "127.0.0.1:1".to_owned()
        };
        let case = case(&mut rng, &host, true);
        let mut commands = vec![&["ping"][..], &["layout"], &["doc", "get", "k"]];
        if !reachable {
            commands.push(&["demo"]);
        }
        for command in commands {
            let mut args = vec!["statehouse", "--url", &case.url, "--timeout-ms", "200"];
            args.extend_from_slice(command);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = statehouse_cli::main_with(args.iter().map(Into::into), &mut out, &mut err);
            if command == ["ping"] && code == statehouse_cli::exit::DONE {
                answered += 1;
            }
            let what = format!("the CLI's output of {command:?}");
            assert_hidden(seed, &case, &what, &String::from_utf8_lossy(&out));
            assert_hidden(seed, &case, &what, &String::from_utf8_lossy(&err));
        }
        cases.push(case);
    }
    assert!(answered > 0, "no case reached the fake server (seed {seed})");

    log.assert_spans_hide(seed, &cases);
}
