//! Listings print page by page: every key once, `--json` one streamed array.

use statehouse_tests::harness::RedisServer;

use super::{run, sorted_json, sorted_lines};

#[test]
fn listings_print_every_key_once_across_pages() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..2500 {
        pipe.cmd("SET").arg(format!("cli:many:{i}")).arg("1").ignore();
    }
    pipe.exec(&mut conn).expect("SET");
    let expected: std::collections::BTreeSet<String> = (0..2500).map(|i| format!("many:{i}")).collect();

    let (code, text, err) = run(&server, &["doc", "list", "many:*"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines = sorted_lines(&text);
    assert_eq!(lines.len(), 2500, "each key once");
    assert!(lines.iter().copied().eq(expected.iter().map(String::as_str)));

    // One array, streamed across pages: still one valid JSON document.
    let (code, json, _) = run(&server, &["--json", "doc", "list", "many:*"]);
    assert_eq!(code, 0);
    assert_eq!(sorted_json(&json), expected.into_iter().collect::<Vec<_>>());
    assert_eq!(run(&server, &["--json", "doc", "list", "none:*"]).1, "[]\n");
}
