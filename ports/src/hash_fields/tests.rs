use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Color {
    Red,
    Green,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shape {
    kind: String,
    sides: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Model {
    #[serde(rename = "id_")]
    id: String,
    count: i64,
    ratio: f64,
    small: f32,
    paid: bool,
    initial: char,
    color: Color,
    note: Option<String>,
    tags: Vec<String>,
    shape: Shape,
    limits: BTreeMap<String, u32>,
    pair: (u8, String),
    big: u128,
}

fn model() -> Model {
    Model {
        id: "7".into(),
        count: -3,
        ratio: 1e20,
        small: 0.1,
        paid: true,
        initial: 'é',
        color: Color::Green,
        note: None,
        tags: vec!["a".into(), "b c".into()],
        shape: Shape {
            kind: "square".into(),
            sides: 4,
        },
        limits: [("x".to_owned(), 1)].into_iter().collect(),
        pair: (1, "one".into()),
        big: u128::MAX,
    }
}

fn as_text(fields: &[(String, Vec<u8>)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(field, value)| (field.as_str(), std::str::from_utf8(value).unwrap()))
        .collect()
}

fn borrowed(fields: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    fields
        .iter()
        .map(|(field, value)| (field.as_str(), value.as_slice()))
        .collect()
}

#[test]
fn every_kind_of_field_has_its_bytes() {
    let fields = to_fields(&model()).unwrap();
    assert_eq!(
        as_text(&fields),
        [
            ("id_", "7"),
            ("count", "-3"),
            ("ratio", "1e+20"),
            ("small", "0.1"),
            ("paid", "True"),
            ("initial", "é"),
            ("color", "Green"),
            ("tags", r#"["a","b c"]"#),
            ("shape", r#"{"kind":"square","sides":4}"#),
            ("limits", r#"{"x":1}"#),
            ("pair", r#"[1,"one"]"#),
            ("big", "340282366920938463463374607431768211455"),
        ]
    );
}

#[test]
fn what_is_written_reads_back_the_same() {
    let mut original = model();
    original.note = Some("hello".into());
    let fields = to_fields(&original).unwrap();
    let back: Model = from_fields(borrowed(&fields)).unwrap();
    assert_eq!(back, original);
    for value in [f64::INFINITY, f64::NEG_INFINITY, -0.0, 5e-324, 1e-5] {
        let bytes = encode_value(&value).unwrap().unwrap();
        assert_eq!(decode_value::<f64>(&bytes).unwrap().to_bits(), value.to_bits());
    }
    let nan = encode_value(&f64::NAN).unwrap().unwrap();
    assert_eq!(nan, b"nan");
    assert!(decode_value::<f64>(&nan).unwrap().is_nan());
}

#[test]
fn python_written_text_reads_leniently() {
    // As redis-py writes Python values: repr of ints and floats, str as is.
    let stored: Vec<(&str, &[u8])> = vec![
        ("id_", b"7"),
        ("count", b"42"),
        ("ratio", b"3"),
        ("small", b"2.5"),
        ("paid", b"true"),
        ("initial", b"x"),
        ("color", b"Red"),
        ("tags", br#"["x", "y"]"#),
        ("shape", br#"{"kind": "tri", "sides": 3}"#),
        ("limits", b"{}"),
        ("pair", br#"[2, "two"]"#),
        ("big", b"1_000"),
        ("python_only", b"whatever"),
    ];
    let model: Model = from_fields(stored).unwrap();
    assert_eq!(model.count, 42);
    assert_eq!(model.ratio, 3.0);
    assert!(model.paid);
    assert_eq!(model.color, Color::Red);
    assert_eq!(model.note, None, "a missing Option field is None");
    assert_eq!(model.tags, ["x", "y"]);
    assert_eq!(model.shape.sides, 3);
    assert_eq!(model.big, 1000);
}

#[test]
fn a_bad_field_is_named_with_the_type_expected_and_without_its_text() {
    let mut fields = to_fields(&model()).unwrap();
    let cases: [(&str, &[u8], &str); 7] = [
        ("count", b"lots", "integer (i64)"),
        ("ratio", b"12,5", "float (f64)"),
        ("paid", b"maybe", "boolean (True/False)"),
        ("color", b"Blue", "enum variant"),
        ("tags", b"[1, 2", "JSON array"),
        ("shape", br#"{"kind": "x"}"#, "JSON object"),
        ("initial", b"xy", "one character"),
    ];
    for (field, text, expected) in cases {
        let at = fields.iter().position(|(name, _)| name == field).unwrap();
        let good = std::mem::replace(&mut fields[at].1, text.to_vec());
        let error = from_fields::<Model>(borrowed(&fields)).unwrap_err();
        assert_eq!(
            (error.field(), error.expected()),
            (Some(field), expected),
            "{error}"
        );
        let shown = error.to_string();
        assert!(!shown.contains(std::str::from_utf8(text).unwrap()), "{shown}");
        let store = error.into_deserialization("load", "Model:7");
        assert_eq!(store.key(), format!("Model:7 field {field}"));
        assert!(store.to_string().contains(expected), "{store}");
        fields[at].1 = good;
    }
    // A field that is missing, and not an Option.
    fields.retain(|(name, _)| name != "count");
    let error = from_fields::<Model>(borrowed(&fields)).unwrap_err();
    assert_eq!(error.field(), Some("count"));
    assert_eq!(error.reason(), "the field is missing");
}

#[test]
fn out_of_range_and_non_utf8_are_refused() {
    assert_eq!(
        decode_value::<u8>(b"256").unwrap_err().reason(),
        "the integer is out of range"
    );
    assert_eq!(
        decode_value::<u8>(b"-1").unwrap_err().reason(),
        "the integer is out of range"
    );
    assert_eq!(
        decode_value::<i64>(b"3.5").unwrap_err().reason(),
        "the text is not an integer"
    );
    assert_eq!(
        decode_value::<String>(b"\xff").unwrap_err().reason(),
        "the stored bytes are not UTF-8 text"
    );
    assert_eq!(decode_value::<Vec<u8>>(b"[1]").unwrap(), [1]);
}

#[test]
fn only_structs_and_maps_are_models() {
    assert!(to_fields(&3).is_err());
    assert!(to_fields(&vec![1]).is_err());
    let map: BTreeMap<&str, Option<u8>> = [("a", Some(1)), ("b", None)].into_iter().collect();
    assert_eq!(as_text(&to_fields(&map).unwrap()), [("a", "1")]);
}

#[test]
fn flattened_maps_keep_unknown_fields_as_text_and_a_later_field_wins() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Open {
        name: String,
        #[serde(flatten)]
        rest: BTreeMap<String, String>,
    }
    let stored: [(&str, &[u8]); 3] = [("name", b"ada"), ("theme", b"dark"), ("n", b"3")];
    let open: Open = from_fields(stored).unwrap();
    assert_eq!(open.rest["n"], "3");
    let written = to_fields(&open).unwrap();
    assert_eq!(
        as_text(&written),
        [("name", "ada"), ("n", "3"), ("theme", "dark")]
    );

    let twice = Open {
        name: "a".into(),
        rest: [("name".to_owned(), "b".to_owned())].into_iter().collect(),
    };
    assert_eq!(as_text(&to_fields(&twice).unwrap()), [("name", "b")]);
}
