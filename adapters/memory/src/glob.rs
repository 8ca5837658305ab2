//! Redis glob matching, ported from `stringmatchlen` in Redis' `util.c` so
//! that `list_keys` in memory matches exactly what `SCAN MATCH` matches.
//!
//! Semantics (byte-wise, case-sensitive): `*` any run of bytes, `?` one
//! byte, `[abc]` a set, `[a-z]` a range (ends in either order), `[^…]`
//! negation, `\x` the literal `x` (also inside brackets). Malformed patterns
//! behave as in Redis: an unterminated `[` class ends at the pattern's end,
//! a trailing lone `\` matches a literal backslash.
//!
//! Like Redis since 7.0.9, a failed `*` expansion stops the search early
//! (`skip_longer`), so patterns with many stars stay polynomial.

/// Whether `string` matches the Redis glob `pattern`.
pub(crate) fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, &mut skip_longer)
}

fn match_impl(pattern: &[u8], string: &[u8], skip_longer: &mut bool) -> bool {
    let at = |s: &[u8], i: usize| s.get(i).copied();
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while at(pattern, p + 1) == Some(b'*') {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if match_impl(&pattern[p + 1..], &string[s..], skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == Some(b'^');
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    match at(pattern, p) {
                        Some(b'\\') if p + 1 < pattern.len() => {
                            p += 1;
                            if pattern[p] == c {
                                matched = true;
                            }
                        }
                        Some(b']') => break,
                        None => {
                            // Unterminated class: Redis steps back so that the
                            // common advance below lands on the pattern's end.
                            p -= 1;
                            break;
                        }
                        Some(start) if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                            let end = pattern[p + 2];
                            let (low, high) = if start <= end { (start, end) } else { (end, start) };
                            p += 2;
                            if (low..=high).contains(&c) {
                                matched = true;
                            }
                        }
                        Some(literal) => {
                            if literal == c {
                                matched = true;
                            }
                        }
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            first => {
                let literal = if first == b'\\' && p + 1 < pattern.len() {
                    p += 1;
                    pattern[p]
                } else {
                    first
                };
                if literal != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == Some(b'*') {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::matches;
    use rstest::rstest;

    #[rstest]
    // As in `stringmatchlen`; SCAN special-cases a lone `*`, and keys are never empty anyway.
    #[case("*", "", false)]
    #[case("*", "anything", true)]
    #[case("user:*", "user:1", true)]
    #[case("user:*", "user:", true)]
    #[case("user:*", "users:1", false)]
    #[case("h?llo", "hello", true)]
    #[case("h?llo", "hllo", false)]
    #[case("h*llo", "heeeello", true)]
    #[case("h[ae]llo", "hallo", true)]
    #[case("h[ae]llo", "hillo", false)]
    #[case("h[^e]llo", "hallo", true)]
    #[case("h[^e]llo", "hello", false)]
    #[case("h[a-b]llo", "hbllo", true)]
    #[case("h[b-a]llo", "hallo", true)]
    #[case("h[a-b]llo", "hcllo", false)]
    #[case(r"a\*b", "a*b", true)]
    #[case(r"a\*b", "axb", false)]
    #[case(r"[\]]", "]", true)]
    #[case(r"[\-]", "-", true)]
    #[case("[abc", "a", true)]
    #[case("[abc", "[", false)]
    #[case("ab\\", "ab\\", true)]
    #[case("a**b", "ab", true)]
    #[case("a*", "a", true)]
    #[case("", "", true)]
    #[case("", "a", false)]
    #[case("a", "", false)]
    #[case("?", "", false)]
    #[case("*a*b*c", "xxaxxbxxc", true)]
    #[case("*a*b*c", "xxaxxbxxd", false)]
    fn matches_like_redis(#[case] pattern: &str, #[case] string: &str, #[case] expected: bool) {
        assert_eq!(
            matches(pattern.as_bytes(), string.as_bytes()),
            expected,
            "{pattern:?} vs {string:?}"
        );
    }

    #[test]
    fn many_stars_do_not_explode() {
        let pattern = "*a".repeat(30) + "b";
        let string = "a".repeat(200);
        assert!(!matches(pattern.as_bytes(), string.as_bytes()));
    }
}
