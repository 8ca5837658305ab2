//! The comparing paths against their oracles: `same::json_is` against
//! serde_json's own bytes, `changes` against encoding both models and
//! comparing (`ModelWrite::changes` of `to_fields`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::same::json_is;
use super::{changes, to_fields};
use crate::ModelWrite;

/// A small deterministic PRNG (xorshift64*): every run checks the same
/// cases, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Text from the pieces JSON escapes and those that look like JSON.
    fn text(&mut self) -> String {
        const PIECES: [&str; 18] = [
            "a", "b", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "😀", "\",\"", "]", "}", ":", ",",
            "null", " ", "\\u0041",
        ];
        let len = self.below(4);
        (0..len).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }

    /// A JSON value, `depth` levels deep at most.
    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth == 0 { 6 } else { 8 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => json!(self.next() as i64 >> self.below(64)),
            3 => json!(f64::from_bits(self.next()) / 1e300),
            4 | 5 => Value::String(self.text()),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.text(), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }
}

/// `json_is` says yes only when serde_json writes `old`, and, for a value
/// it can compare (`Exact`), exactly then.
fn agrees<T: Serialize + ?Sized>(value: &T, old: &[u8], exact: Exact) {
    let text = serde_json::to_vec(value).unwrap();
    let said = json_is(value, old);
    let context = || {
        format!(
            "{:?} against {:?}",
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(old)
        )
    };
    if said {
        assert_eq!(text, old, "said equal: {}", context());
    }
    if exact == Exact::Yes {
        assert_eq!(said, text == old, "{}", context());
    }
}

/// Whether `json_is` can tell every answer of a value (`No`: a map key
/// that is not a string, which it leaves to the caller's encoding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exact {
    Yes,
    No,
}

/// `value` against its own text, and against that text changed at every
/// byte, cut short and lengthened.
fn agrees_with_variants<T: Serialize + ?Sized>(value: &T, exact: Exact) {
    let text = serde_json::to_vec(value).unwrap();
    agrees(value, &text, exact);
    for at in 0..text.len() {
        let mut changed = text.clone();
        changed[at] ^= 0x01;
        agrees(value, &changed, exact);
        agrees(value, &text[..at], exact);
    }
    agrees(value, &[text.as_slice(), b" "].concat(), exact);
    agrees(value, &[text.as_slice(), b"0"].concat(), exact);
}

#[derive(Serialize)]
enum Kinds {
    Unit,
    Newtype(String),
    Tuple(u8, String),
    Struct { a: Option<u8>, b: Vec<String> },
    Empty {},
}

#[derive(Serialize)]
struct UnitStruct;

#[derive(Serialize)]
struct Wrapper(String);

#[derive(Serialize)]
struct Typed {
    kinds: Vec<Kinds>,
    unit: (),
    unit_struct: UnitStruct,
    wrapper: Wrapper,
    chars: (char, char),
    bytes: Vec<u8>,
    small: f32,
    nan: f64,
    inf: f32,
    big: i128,
    huge: u128,
    enum_keys: BTreeMap<Color, u8>,
    newtype_keys: BTreeMap<Name, u8>,
    empty: BTreeMap<String, u8>,
    nested: Vec<Vec<Option<String>>>,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
enum Color {
    Red,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Name(String);

fn typed() -> Typed {
    Typed {
        kinds: vec![
            Kinds::Unit,
            Kinds::Newtype("n\"".into()),
            Kinds::Tuple(1, "t".into()),
            Kinds::Struct {
                a: None,
                b: vec!["x".into(), "\\".into()],
            },
            Kinds::Empty {},
        ],
        unit: (),
        unit_struct: UnitStruct,
        wrapper: Wrapper("w".into()),
        chars: ('"', 'é'),
        bytes: vec![0, 34, 255],
        small: 0.1,
        nan: f64::NAN,
        inf: f32::INFINITY,
        big: i128::MIN,
        huge: u128::MAX,
        enum_keys: [(Color::Red, 1)].into_iter().collect(),
        newtype_keys: [(Name("k\"".into()), 1)].into_iter().collect(),
        empty: BTreeMap::new(),
        nested: vec![vec![], vec![None, Some(String::new())]],
    }
}

#[test]
fn json_is_agrees_with_serde_json_on_every_kind_of_value() {
    agrees_with_variants(&typed(), Exact::Yes);
    agrees_with_variants(
        &json!({"a": [1, 2.5, -3, "x", null, true, {}, []], "": {"\"": "\n"}}),
        Exact::Yes,
    );
    for value in [json!(""), json!("plain"), json!(0), json!([]), json!({})] {
        agrees_with_variants(&value, Exact::Yes);
    }
    // Keys serde_json writes as strings: never said equal wrongly.
    let int_keys: BTreeMap<u32, String> = [(1, "one".into()), (20, "\u{0}".into())].into_iter().collect();
    agrees_with_variants(&int_keys, Exact::No);
    let bool_keys: BTreeMap<bool, u8> = [(true, 1)].into_iter().collect();
    agrees_with_variants(&bool_keys, Exact::No);
}

#[test]
fn json_is_agrees_with_serde_json_on_random_values_and_texts() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let values: Vec<Value> = (0..300).map(|_| rng.value(3)).collect();
    for value in &values {
        agrees_with_variants(value, Exact::Yes);
    }
    // Each against the others' texts (mostly different, sometimes equal).
    for pair in values.windows(2) {
        agrees(&pair[0], &serde_json::to_vec(&pair[1]).unwrap(), Exact::Yes);
    }
}

#[test]
fn a_string_is_never_taken_for_the_json_it_looks_like() {
    // Unescaped, these strings' bytes line up with the other's text.
    let one = vec!["a\",\"b".to_owned()];
    let two = vec!["a".to_owned(), "b".to_owned()];
    agrees(&one, &serde_json::to_vec(&two).unwrap(), Exact::Yes);
    agrees(&two, &serde_json::to_vec(&one).unwrap(), Exact::Yes);
    agrees(&one, br#"["a","b"]"#, Exact::Yes);
    agrees(&json!({"k": "v\"}"}), br#"{"k":"v"}"}"#, Exact::Yes);
    assert!(!json_is(&"a\"b", b"\"a\"b\""));
    assert!(json_is(&"a\"b", b"\"a\\\"b\""));
}

/// `changes` of `new` over the encoding of `old` is what encoding both and
/// comparing gives.
fn same_writes<A: Serialize, B: Serialize>(old: &A, new: &B) -> ModelWrite {
    let old = to_fields(old).unwrap();
    let borrowed: Vec<(&str, &[u8])> = old
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    let expected = ModelWrite::changes(&old, &to_fields(new).unwrap());
    let write = changes(&borrowed, new).unwrap();
    assert_eq!(write, expected);
    write
}

#[derive(Serialize, Clone)]
struct Model {
    id_: String,
    count: u64,
    ratio: f64,
    note: Option<String>,
    doc: Value,
    typed: Option<Vec<Kinds2>>,
}

#[derive(Serialize, Clone)]
enum Kinds2 {
    A(String),
    B { x: u8 },
}

#[test]
fn changes_are_what_encoding_both_and_comparing_gives() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let model = |rng: &mut Rng| Model {
        id_: "7".into(),
        count: rng.below(3) as u64,
        ratio: [0.5, 1e20, f64::NAN][rng.below(3)],
        note: [None, Some("gift".into()), Some("\"".into())][rng.below(3)].clone(),
        doc: rng.value(2),
        typed: [None, Some(vec![Kinds2::A("a\"".into()), Kinds2::B { x: 1 }])][rng.below(2)].clone(),
    };
    let mut seen = [0; 3];
    for _ in 0..500 {
        let old = model(&mut rng);
        // Another model, or the same with one field of another's.
        let other = model(&mut rng);
        let new = match rng.below(7) {
            0 => other,
            1 => Model {
                count: other.count,
                ..old.clone()
            },
            2 => Model {
                ratio: other.ratio,
                ..old.clone()
            },
            3 => Model {
                note: other.note,
                ..old.clone()
            },
            4 => Model {
                doc: other.doc,
                ..old.clone()
            },
            5 => Model {
                typed: other.typed,
                ..old.clone()
            },
            _ => old.clone(),
        };
        same_writes(&old, &old);
        match same_writes(&old, &new) {
            ModelWrite::Keep => seen[0] += 1,
            ModelWrite::Fields { delete, .. } if delete.is_empty() => seen[1] += 1,
            _ => seen[2] += 1,
        }
    }
    // Every outcome was met: nothing changed, fields set, fields deleted.
    assert!(seen.iter().all(|&count| count > 0), "{seen:?}");
}

#[test]
fn changes_of_maps_of_many_fields_and_repeated_names() {
    let old: BTreeMap<String, u32> = (0..100).map(|at| (format!("f{at}"), at)).collect();
    let mut new = old.clone();
    new.remove("f3");
    new.insert("f50".into(), 0);
    new.insert("g".into(), 1);
    let ModelWrite::Fields { set, delete } = same_writes(&old, &new) else {
        panic!("a change");
    };
    assert_eq!((set.len(), delete), (2, vec!["f3".to_owned()]));
    same_writes(&old, &old);

    #[derive(Serialize)]
    struct Open {
        name: String,
        #[serde(flatten)]
        rest: BTreeMap<String, String>,
    }
    let twice = |first: &str, last: &str| Open {
        name: first.into(),
        rest: [("name".to_owned(), last.to_owned())].into_iter().collect(),
    };
    same_writes(&twice("a", "b"), &twice("b", "b"));
    same_writes(&twice("a", "b"), &twice("a", "c"));
    same_writes(&twice("a", "b"), &twice("b", "a"));
}

#[test]
fn a_field_stored_in_another_form_is_compared_by_its_bytes() {
    // The codec writes 3; Python's text "3.0" reads as 3 but is other bytes.
    let old: [(&str, &[u8]); 2] = [("count", b"3.0"), ("id_", b"7")];
    #[derive(Serialize)]
    struct Small {
        id_: String,
        count: u8,
    }
    let model = Small {
        id_: "7".into(),
        count: 3,
    };
    assert_eq!(
        changes(&old, &model).unwrap(),
        ModelWrite::Fields {
            set: vec![("count".into(), b"3".to_vec())],
            delete: Vec::new()
        }
    );
    // An error names the field, as encoding does.
    let bad: BTreeMap<String, BTreeMap<Vec<u8>, u8>> =
        [("m".to_owned(), [(vec![1], 1)].into_iter().collect())]
            .into_iter()
            .collect();
    assert_eq!(changes(&[], &bad).unwrap_err().field(), Some("m"));
}
