//! Tests of [`crate::amf`]: the rocketamf and Red5 fixtures, byte-exact encodings,
//! round trips and hostile input.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

const ROCKETAMF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/amf/rocketamf_fixtures/objects"
);
const RED5: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/amf/red5_amf3");

fn read(dir: &str, name: &str) -> Vec<u8> {
    let path = format!("{dir}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn n(number: f64) -> Value {
    Value::Number(number)
}

fn obj(props: Vec<(&str, Value)>) -> Value {
    Value::object(props)
}

fn typed(class: &str, props: Vec<(&str, Value)>) -> Value {
    Value::Object {
        class_name: Some(class.to_owned()),
        properties: props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn ecma(props: Vec<(&str, Value)>) -> Value {
    Value::EcmaArray(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn arr(items: Vec<Value>) -> Value {
    Value::StrictArray(items)
}

/// Decodes a rocketamf fixture with the decoder its name asks for.
fn decode_fixture(name: &str, bytes: &[u8]) -> Result<(Value, usize), AmfError> {
    if name.starts_with("amf0-") {
        decode_amf0(bytes)
    } else {
        decode_amf3(bytes)
    }
}

/// A rocketamf fixture that must decode using all of its bytes.
fn fixture_value(name: &str) -> Value {
    let bytes = read(ROCKETAMF, name);
    let (value, used) = decode_fixture(name, &bytes).unwrap_or_else(|e| panic!("{name} failed to decode: {e}"));
    assert_eq!(used, bytes.len(), "{name}: bytes consumed");
    value
}

/// Equality that compares numbers by bits: tells -0.0 from 0.0 and NaN equals itself.
fn same(a: &Value, b: &Value) -> bool {
    fn same_props(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) | (Value::Date(x), Value::Date(y)) => x.to_bits() == y.to_bits(),
        (
            Value::Object {
                class_name: ca,
                properties: pa,
            },
            Value::Object {
                class_name: cb,
                properties: pb,
            },
        ) => ca == cb && same_props(pa, pb),
        (Value::EcmaArray(pa), Value::EcmaArray(pb)) => same_props(pa, pb),
        (Value::StrictArray(ia), Value::StrictArray(ib)) => {
            ia.len() == ib.len() && ia.iter().zip(ib).all(|(x, y)| same(x, y))
        }
        _ => a == b,
    }
}

/// What AMF3 cannot tell apart, mapped to what [`decode_amf3`] gives back:
///
/// 1. an `Object` with class name `Some("")` → `None` (AMF3 writes the anonymous
///    class as `""`);
/// 2. an empty `EcmaArray` → empty `StrictArray` (an AMF3 array with neither
///    associative nor dense entries decodes as a strict array).
///
/// Nothing else changes: `-0.0` is written as a double to keep its sign, and an
/// `EcmaArray` or `Object` with an empty key is written as a dictionary or with
/// sealed members so that the key survives.
fn normalize_amf3(value: &Value) -> Value {
    let props = |p: &[(String, Value)]| -> Vec<(String, Value)> {
        p.iter().map(|(k, v)| (k.clone(), normalize_amf3(v))).collect()
    };
    match value {
        Value::Object { class_name, properties } => Value::Object {
            class_name: class_name.clone().filter(|c| !c.is_empty()),
            properties: props(properties),
        },
        Value::EcmaArray(p) if p.is_empty() => Value::StrictArray(Vec::new()),
        Value::EcmaArray(p) => Value::EcmaArray(props(p)),
        Value::StrictArray(items) => Value::StrictArray(items.iter().map(normalize_amf3).collect()),
        other => other.clone(),
    }
}

/// How many containers nest in `value` (0 for a scalar).
fn depth(value: &Value) -> usize {
    match value {
        Value::Object { properties, .. } | Value::EcmaArray(properties) => {
            1 + properties.iter().map(|(_, v)| depth(v)).max().unwrap_or(0)
        }
        Value::StrictArray(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// How many values `value` holds, itself included.
fn nodes(value: &Value) -> usize {
    match value {
        Value::Object { properties, .. } | Value::EcmaArray(properties) => {
            1 + properties.iter().map(|(_, v)| nodes(v)).sum::<usize>()
        }
        Value::StrictArray(items) => 1 + items.iter().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

fn amf0(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_amf0(value, &mut out);
    out
}

fn amf3(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_amf3(value, &mut out);
    out
}

/// An AMF3 inline string (length < 64 bytes): U29 header then text.
fn amf3_str(text: &str) -> Vec<u8> {
    assert!(text.len() < 64);
    let mut out = vec![(text.len() as u8) << 1 | 1];
    out.extend_from_slice(text.as_bytes());
    out
}

// ---------------------------------------------------------------------------------
// rocketamf fixtures: values written by Adobe's runtime
// ---------------------------------------------------------------------------------

#[test]
fn every_rocketamf_fixture_decodes_whole_or_fails_as_expected() {
    let mut names: Vec<String> = std::fs::read_dir(ROCKETAMF)
        .expect("fixture folder")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 61, "17 AMF0 + 44 AMF3 fixtures");
    for name in &names {
        let bytes = read(ROCKETAMF, name);
        match (name.as_str(), decode_fixture(name, &bytes)) {
            // A class with its own private format: refused by design.
            ("amf3-externalizable.bin", result) => assert_eq!(
                result,
                Err(AmfError::UnsupportedExternalizable("ExternalizableTest".into()))
            ),
            // children[0].parent points back at the root, still being decoded.
            ("amf3-graph-member.bin", result) => assert_eq!(
                result,
                Err(AmfError::CyclicReference {
                    table: RefTable::Amf3Object,
                    index: 0,
                    at: 28
                })
            ),
            (_, Ok((_, used))) => assert_eq!(used, bytes.len(), "{name}: bytes consumed"),
            (_, Err(e)) => panic!("{name}: {e}"),
        }
    }
}

#[test]
#[allow(clippy::approx_constant)] // the fixtures hold 3.14, not π
fn rocketamf_amf0_values() {
    let inner = obj(vec![("bar", n(3.14)), ("foo", s("baz"))]);
    let cases = vec![
        ("amf0-boolean.bin", Value::Boolean(true)),
        ("amf0-number.bin", n(3.5)),
        ("amf0-string.bin", s("this is a テスト")),
        (
            "amf0-complex-encoded-string.bin",
            obj(vec![
                ("shift", s("Shift テスト")),
                ("utf", s("UTF テスト")),
                ("zed", n(5.0)),
            ]),
        ),
        ("amf0-null.bin", Value::Null),
        ("amf0-undefined.bin", Value::Undefined),
        ("amf0-object.bin", inner.clone()),
        (
            "amf0-untyped-object.bin",
            obj(vec![("baz", Value::Null), ("foo", s("bar"))]),
        ),
        (
            "amf0-typed-object.bin",
            typed("org.amf.ASClass", vec![("baz", Value::Null), ("foo", s("bar"))]),
        ),
        ("amf0-hash.bin", ecma(vec![("a", s("b")), ("c", s("d"))])),
        (
            "amf0-ecma-ordinal-array.bin",
            ecma(vec![("0", s("a")), ("1", s("b")), ("2", s("c")), ("3", s("d"))]),
        ),
        (
            "amf0-empty-string-key-hash.bin",
            ecma(vec![("c", s("d")), ("a", s("b")), ("", s("last"))]),
        ),
        ("amf0-strict-array.bin", arr(vec![s("a"), s("b"), s("c"), s("d")])),
        // 2020-05-30T00:00:00Z, time zone 0.
        ("amf0-date.bin", Value::Date(1_590_796_800_000.0)),
        // 2003-02-13T05:00:00Z; the time zone field (0x012C) is ignored.
        ("amf0-time.bin", Value::Date(1_045_112_400_000.0)),
        (
            "amf0-xml-doc.bin",
            Value::Xml(r#"<parent><child prop="test" /></parent>"#.into()),
        ),
        // {"0": obj, "1": reference 1 (obj; the outer object is 0)}
        ("amf0-ref-test.bin", obj(vec![("0", inner.clone()), ("1", inner)])),
    ];
    for (name, expected) in cases {
        assert_eq!(fixture_value(name), expected, "{name}");
    }
}

#[test]
fn rocketamf_amf3_values() {
    let as_class = |foo: &str| typed("org.amf.ASClass", vec![("baz", Value::Null), ("foo", s(foo))]);
    let foo_bar = obj(vec![("foo", s("bar"))]);
    let xml = Value::Xml(r#"<parent><child prop="test"/></parent>"#.into());
    let one = obj(vec![("foo_one", s("bar_one"))]);
    let two = obj(vec![("foo_two", s(""))]);
    let three = obj(vec![("foo_three", n(42.0))]);
    let cases = vec![
        ("amf3-0.bin", n(0.0)),
        ("amf3-true.bin", Value::Boolean(true)),
        ("amf3-false.bin", Value::Boolean(false)),
        ("amf3-null.bin", Value::Null),
        ("amf3-float.bin", n(3.5)),
        ("amf3-bigNum.bin", n(f64::from_bits(0x7E70_0000_0000_0000))),
        ("amf3-max.bin", n(268_435_455.0)),
        ("amf3-min.bin", n(-268_435_456.0)),
        ("amf3-large-max.bin", n(268_435_456.0)),
        ("amf3-large-min.bin", n(-268_435_457.0)),
        ("amf3-string.bin", s("String . String")),
        ("amf3-symbol.bin", s("foo")),
        (
            "amf3-string-ref.bin",
            arr(vec![
                s("foo"),
                s("str"),
                s("foo"),
                s("str"),
                s("foo"),
                obj(vec![("str", s("foo"))]),
            ]),
        ),
        ("amf3-empty-string-ref.bin", arr(vec![s(""), s("")])),
        (
            "amf3-encoded-string-ref.bin",
            arr(vec![s("this is a テスト"), s("this is a テスト")]),
        ),
        (
            "amf3-complex-encoded-string-array.bin",
            arr(vec![n(5.0), s("Shift テスト"), s("UTF テスト"), n(5.0)]),
        ),
        ("amf3-date.bin", Value::Date(0.0)),
        ("amf3-date-ref.bin", arr(vec![Value::Date(0.0), Value::Date(0.0)])),
        (
            "amf3-xml-doc.bin",
            Value::Xml(r#"<parent><child prop="test" /></parent>"#.into()),
        ),
        ("amf3-xml.bin", xml.clone()),
        ("amf3-xml-ref.bin", arr(vec![xml.clone(), xml])),
        (
            "amf3-byte-array.bin",
            Value::ByteArray(b"\x00\x03\xe3\x81\x93\xe3\x82\x8ctest@".to_vec()),
        ),
        (
            "amf3-byte-array-ref.bin",
            arr(vec![
                Value::ByteArray(b"ASDF".to_vec()),
                Value::ByteArray(b"ASDF".to_vec()),
            ]),
        ),
        ("amf3-empty-array.bin", arr(vec![])),
        (
            "amf3-empty-array-ref.bin",
            arr(vec![arr(vec![]), arr(vec![]), arr(vec![]), arr(vec![])]),
        ),
        (
            "amf3-primitive-array.bin",
            arr(vec![n(1.0), n(2.0), n(3.0), n(4.0), n(5.0)]),
        ),
        (
            "amf3-array-ref.bin",
            arr(vec![
                arr(vec![n(1.0), n(2.0), n(3.0)]),
                arr(vec![s("a"), s("b"), s("c")]),
                arr(vec![n(1.0), n(2.0), n(3.0)]),
                arr(vec![s("a"), s("b"), s("c")]),
            ]),
        ),
        (
            "amf3-associative-array.bin",
            ecma(vec![
                ("asdf", s("fdsa")),
                ("foo", s("bar")),
                ("42", s("bar")),
                ("0", s("bar1")),
                ("1", s("bar2")),
                ("2", s("bar3")),
            ]),
        ),
        (
            "amf3-mixed-array.bin",
            arr(vec![
                one.clone(),
                two.clone(),
                three.clone(),
                obj(vec![]),
                arr(vec![one, two, three.clone()]),
                arr(vec![]),
                n(42.0),
                s(""),
                arr(vec![]),
                s(""),
                obj(vec![]),
                s("bar_one"),
                three,
            ]),
        ),
        ("amf3-hash.bin", obj(vec![("answer", n(42.0)), ("foo", s("bar"))])),
        (
            "amf3-dynamic-object.bin",
            obj(vec![
                ("another_public_property", s("a_public_value")),
                ("nil_property", Value::Null),
                ("property_one", s("foo")),
            ]),
        ),
        ("amf3-typed-object.bin", as_class("bar")),
        ("amf3-trait-ref.bin", arr(vec![as_class("foo"), as_class("bar")])),
        (
            "amf3-object-ref.bin",
            arr(vec![
                arr(vec![foo_bar.clone(), foo_bar.clone()]),
                s("bar"),
                arr(vec![foo_bar.clone(), foo_bar]),
            ]),
        ),
        ("amf3-vector-int.bin", arr(vec![n(4.0), n(-20.0), n(12.0)])),
        ("amf3-vector-uint.bin", arr(vec![n(4.0), n(20.0), n(12.0)])),
        ("amf3-vector-double.bin", arr(vec![n(4.3), n(-20.6)])),
        (
            "amf3-vector-object.bin",
            arr(vec![as_class("foo"), as_class("bar"), as_class("baz")]),
        ),
        ("amf3-empty-dictionary.bin", ecma(vec![])),
        (
            "amf3-dictionary.bin",
            ecma(vec![
                ("bar", s("asdf1")),
                (r#"org.amf.ASClass {baz: null, foo: "baz"}"#, s("asdf2")),
            ]),
        ),
        // Externalizable ArrayCollection: the body (its source array) stands for it.
        ("amf3-array-collection.bin", arr(vec![s("foo"), s("bar")])),
        (
            "amf3-complex-array-collection.bin",
            arr(vec![
                arr(vec![s("foo"), s("bar")]),
                arr(vec![as_class("bar"), as_class("asdf")]),
                arr(vec![as_class("bar"), as_class("asdf")]),
            ]),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(fixture_value(name), expected, "{name}");
    }
}

/// Our encoders write exactly what Adobe's runtime wrote for these values (not
/// `amf0-date.bin`, whose time zone field is 0x00F0 where we write 0).
#[test]
fn encoders_reproduce_adobe_bytes() {
    for name in [
        "amf0-boolean.bin",
        "amf0-number.bin",
        "amf0-string.bin",
        "amf0-complex-encoded-string.bin",
        "amf0-null.bin",
        "amf0-undefined.bin",
        "amf0-object.bin",
        "amf0-untyped-object.bin",
        "amf0-typed-object.bin",
        "amf0-strict-array.bin",
        "amf0-xml-doc.bin",
    ] {
        assert_eq!(amf0(&fixture_value(name)), read(ROCKETAMF, name), "{name}");
    }
    for name in [
        "amf3-0.bin",
        "amf3-true.bin",
        "amf3-false.bin",
        "amf3-null.bin",
        "amf3-float.bin",
        "amf3-bigNum.bin",
        "amf3-max.bin",
        "amf3-min.bin",
        "amf3-large-max.bin",
        "amf3-large-min.bin",
        "amf3-string.bin",
        "amf3-symbol.bin",
        "amf3-date.bin",
        "amf3-xml.bin",
        "amf3-byte-array.bin",
        "amf3-empty-array.bin",
        "amf3-primitive-array.bin",
        "amf3-hash.bin",
        "amf3-dynamic-object.bin",
    ] {
        assert_eq!(amf3(&fixture_value(name)), read(ROCKETAMF, name), "{name}");
    }
}

// ---------------------------------------------------------------------------------
// Red5 fixtures: AMF3-in-AMF0 data message bodies (type 15, leading 0x00)
// ---------------------------------------------------------------------------------

/// The body of a Red5 fixture without its type-15 format byte.
fn red5_body(name: &str) -> Vec<u8> {
    let bytes = read(RED5, name);
    assert_eq!(bytes.first(), Some(&0x00), "{name}: type-15 format byte");
    bytes[1..].to_vec()
}

/// Each Red5 vector lacks its final byte (the 0x01 closing the AMF3 object's
/// dynamic members): the sequence decoder reports exactly that, and the values
/// decode once the byte is put back.
fn red5_values(name: &str) -> Vec<Value> {
    let mut body = red5_body(name);
    assert_eq!(
        decode_amf0_sequence(&body),
        Err(AmfError::UnexpectedEof {
            needed: 1,
            at: body.len()
        }),
        "{name}"
    );
    body.push(0x01);
    decode_amf0_sequence(&body).unwrap_or_else(|e| panic!("{name} completed: {e}"))
}

fn sorted_props(value: &Value) -> Vec<(String, Value)> {
    let mut props = value.properties().expect("object").to_vec();
    props.sort_by(|a, b| a.0.cmp(&b.0));
    props
}

#[test]
fn red5_on_meta_info() {
    const BASE64_STRING: &str = "VGhpcyBpcyBiYXNlNjQgZW5jb2RlZCBzdHJpbmc";
    let expected = obj(vec![
        (
            "SyncText",
            obj(vec![("language", s("eng")), ("data", s("This is SyncText"))]),
        ),
        (
            "PrivateData",
            obj(vec![("ownerId", s("0")), ("data", s(BASE64_STRING))]),
        ),
        ("CommercialInformationURL", obj(vec![("data", s("http://red5pro.com"))])),
        (
            "GeneralObject",
            obj(vec![
                ("data", s("VGhpcyBpcyBnZW5lcmFsaXplZCBvYmplY3QgYmFzZTY0IGVuY29kZWQ")),
                ("filename", s("myFile.txt")),
            ]),
        ),
        ("UserText", obj(vec![("data", s("UserTextRicha"))])),
        ("Comment", obj(vec![("language", s("eng")), ("data", s(BASE64_STRING))])),
        ("UserDefinedURL", obj(vec![("data", s("http://github.com/mondain"))])),
    ]);
    let first = red5_values("red5_AMF3IOTest_L0076.bin");
    assert_eq!(first, vec![s("onMetaInfo"), expected.clone()]);

    // The second vector holds the same data, members in another order and more
    // string references.
    let second = red5_values("red5_AMF3IOTest_L0098.bin");
    assert_eq!(second.len(), 2);
    assert_eq!(second[0], s("onMetaInfo"));
    let normalize = |v: &Value| -> Vec<(String, Vec<(String, Value)>)> {
        sorted_props(v)
            .into_iter()
            .map(|(k, v)| (k, sorted_props(&v)))
            .collect()
    };
    assert_eq!(normalize(&second[1]), normalize(&expected));
}

#[test]
fn red5_set_data_frame_on_stream_send() {
    let values = red5_values("red5_AMF3IOTest_L0114.bin");
    assert_eq!(
        values,
        vec![s("@setDataFrame"), s("onStreamSend"), obj(vec![("rnd", s("666"))]),]
    );
}

#[test]
fn red5_on_cue_point() {
    // An anonymous sealed object cut right after its marker: class name missing.
    let values = red5_values("red5_AMF3IOTest_L0151.bin");
    assert_eq!(values, vec![s("onCuePoint"), obj(vec![])]);
    // The first value decodes on its own.
    let body = red5_body("red5_AMF3IOTest_L0151.bin");
    assert_eq!(decode_amf0(&body), Ok((s("onCuePoint"), 13)));

    let values = red5_values("red5_AMF3IOTest_L0153.bin");
    assert_eq!(
        values,
        vec![
            s("onCuePoint"),
            obj(vec![
                ("name", s("navCuePoint")),
                ("type", s("event")),
                ("time", n(1.0)),
                ("parameters", obj(vec![("orientation", n(90.0))])),
            ]),
        ]
    );
}

// ---------------------------------------------------------------------------------
// AMF0 specifics
// ---------------------------------------------------------------------------------

#[test]
fn amf0_references_span_the_sequence() {
    // {a: 1}, then reference 0 to it.
    let mut input = amf0(&obj(vec![("a", n(1.0))]));
    input.extend_from_slice(&[0x07, 0x00, 0x00]);
    let a = obj(vec![("a", n(1.0))]);
    assert_eq!(decode_amf0_sequence(&input), Ok(vec![a.clone(), a]));
    // A single decode_amf0 has its own table.
    assert_eq!(
        decode_amf0(&input[input.len() - 3..]),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf0Object,
            index: 0,
            len: 0,
            at: 0
        })
    );
}

#[test]
fn amf0_cyclic_and_invalid_references() {
    // A strict array whose element is a reference to itself.
    assert_eq!(
        decode_amf0(&[0x0A, 0, 0, 0, 1, 0x07, 0, 0]),
        Err(AmfError::CyclicReference {
            table: RefTable::Amf0Object,
            index: 0,
            at: 5
        })
    );
    // An object member referring to its object.
    assert!(matches!(
        decode_amf0(&[0x03, 0, 1, b'a', 0x07, 0, 0, 0, 0, 0x09]),
        Err(AmfError::CyclicReference { index: 0, .. })
    ));
    assert_eq!(
        decode_amf0(&[0x07, 0x00, 0x05]),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf0Object,
            index: 5,
            len: 0,
            at: 0
        })
    );
}

#[test]
fn amf0_markers() {
    for marker in [0x04u8, 0x09, 0x0E, 0x12, 0xFF] {
        assert_eq!(
            decode_amf0(&[marker, 0, 0, 0, 0]),
            Err(AmfError::UnknownMarker {
                format: Format::Amf0,
                marker,
                at: 0
            })
        );
    }
    assert_eq!(decode_amf0(&[0x0D]), Ok((Value::Undefined, 1)));
    assert_eq!(decode_amf0(&[0x01, 0x07]), Ok((Value::Boolean(true), 2)));
    assert_eq!(decode_amf0(&[]), Err(AmfError::UnexpectedEof { needed: 1, at: 0 }));
    // Trailing bytes are left for the caller.
    assert_eq!(decode_amf0(&[0x05, 0x05]), Ok((Value::Null, 1)));
}

#[test]
fn amf0_ecma_array_count_is_only_a_hint() {
    let input = [0x08, 0, 0, 0, 5, 0, 1, b'a', 0x05, 0, 0, 0x09];
    assert_eq!(decode_amf0(&input), Ok((ecma(vec![("a", Value::Null)]), input.len())));
}

#[test]
fn amf0_object_end() {
    // The input ends before the end marker.
    assert_eq!(
        decode_amf0(&[0x03, 0, 1, b'a', 0x05, 0, 0]),
        Err(AmfError::UnexpectedEof { needed: 1, at: 7 })
    );
    // A member with the empty key, as Adobe's runtime writes for {"": v}.
    assert_eq!(
        decode_amf0(&[0x03, 0, 0, 0x05, 0, 0, 0x09]),
        Ok((obj(vec![("", Value::Null)]), 7))
    );
    // A stray end marker where a value belongs.
    assert!(matches!(
        decode_amf0(&[0x03, 0, 1, b'a', 0x09]),
        Err(AmfError::UnknownMarker {
            marker: 0x09,
            at: 4,
            ..
        })
    ));
}

#[test]
fn amf0_invalid_utf8_is_located() {
    assert_eq!(
        decode_amf0(&[0x02, 0, 3, b'a', 0xFF, b'b']),
        Err(AmfError::InvalidUtf8 { at: 4 })
    );
}

#[test]
fn amf0_avmplus_gets_fresh_amf3_tables_per_value() {
    // 0x11 "foo", then 0x11 string reference 0: the second value's table is empty.
    let input = [0x11, 0x06, 0x07, b'f', b'o', b'o', 0x11, 0x06, 0x00];
    assert_eq!(
        decode_amf0_sequence(&input),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf3String,
            index: 0,
            len: 0,
            at: 8
        })
    );
    assert_eq!(decode_amf0_sequence(&input[..6]), Ok(vec![s("foo")]));
}

#[test]
fn amf0_encoding_choices() {
    // Long strings.
    let long = "é".repeat(40_000); // 80 000 bytes
    let bytes = amf0(&Value::String(long.clone()));
    assert_eq!(&bytes[..5], &[0x0C, 0x00, 0x01, 0x38, 0x80]);
    assert_eq!(decode_amf0(&bytes), Ok((Value::String(long.clone()), bytes.len())));
    let exact = "x".repeat(65_535);
    assert_eq!(amf0(&Value::String(exact))[0], 0x02);

    // A key longer than a u16 length: the object goes over AVM+ as AMF3.
    let value = obj(vec![(long.as_str(), n(1.0))]);
    let bytes = amf0(&value);
    assert_eq!(&bytes[..2], &[0x11, 0x0A]);
    assert_eq!(decode_amf0(&bytes), Ok((value, bytes.len())));

    // Typed objects, byte arrays, dates.
    assert_eq!(amf0(&typed("C", vec![])), vec![0x10, 0, 1, b'C', 0, 0, 0x09]);
    assert_eq!(amf0(&Value::ByteArray(vec![1, 2, 3])), vec![0x11, 0x0C, 0x07, 1, 2, 3]);
    assert_eq!(amf0(&Value::Date(0.0)), vec![0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(amf0(&ecma(vec![])), vec![0x08, 0, 0, 0, 0, 0, 0, 0x09]);
}

// ---------------------------------------------------------------------------------
// AMF3 specifics
// ---------------------------------------------------------------------------------

#[test]
fn amf3_integer_encoding() {
    let cases: [(f64, &[u8]); 9] = [
        (0.0, &[0x04, 0x00]),
        (127.0, &[0x04, 0x7F]),
        (128.0, &[0x04, 0x81, 0x00]),
        (16_384.0, &[0x04, 0x81, 0x80, 0x00]),
        (2_097_152.0, &[0x04, 0x80, 0xC0, 0x80, 0x00]),
        (-1.0, &[0x04, 0xFF, 0xFF, 0xFF, 0xFF]),
        (268_435_455.0, &[0x04, 0xBF, 0xFF, 0xFF, 0xFF]),
        (-268_435_456.0, &[0x04, 0xC0, 0x80, 0x80, 0x00]),
        (-0.0, &[0x05, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (number, bytes) in cases {
        assert_eq!(amf3(&n(number)), bytes, "{number}");
        let (decoded, used) = decode_amf3(bytes).expect("decodes");
        assert!(same(&decoded, &n(number)), "{number}");
        assert_eq!(used, bytes.len());
    }
    assert_eq!(amf3(&n(1.5))[0], 0x05);
    assert_eq!(amf3(&n(268_435_456.0))[0], 0x05);
}

#[test]
fn amf3_empty_keys_survive_encoding() {
    // An object with an empty key is written with sealed members.
    let value = typed("C", vec![("", n(1.0)), ("b", s("x"))]);
    let bytes = amf3(&value);
    assert_eq!(&bytes[..2], &[0x0A, 0x23]); // 2 sealed members, not dynamic
    assert_eq!(decode_amf3(&bytes), Ok((value, bytes.len())));
    // An ECMA array with an empty key is written as a dictionary.
    let value = ecma(vec![("a", n(1.0)), ("", n(2.0))]);
    let bytes = amf3(&value);
    assert_eq!(bytes[0], 0x11);
    assert_eq!(decode_amf3(&bytes), Ok((value, bytes.len())));
}

#[test]
fn amf3_object_proxy_and_array_collection() {
    let proxy_name = amf3_str("flex.messaging.io.ObjectProxy");
    let mut input = vec![0x0A, 0x07];
    input.extend_from_slice(&proxy_name);
    input.extend_from_slice(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01]);
    assert_eq!(decode_amf3(&input), Ok((obj(vec![("a", n(1.0))]), input.len())));

    // An ArrayCollection whose body is a reference to the collection itself.
    let mut input = vec![0x0A, 0x07];
    input.extend_from_slice(&amf3_str("flex.messaging.io.ArrayCollection"));
    input.extend_from_slice(&[0x09, 0x00]);
    assert!(matches!(
        decode_amf3(&input),
        Err(AmfError::CyclicReference { index: 0, .. })
    ));

    // Any other externalizable class, by traits reference too.
    let mut input = vec![0x09, 0x05, 0x01, 0x0A, 0x07];
    input.extend_from_slice(&amf3_str("com.example.Private"));
    input.extend_from_slice(&[0x0A, 0x01]);
    assert_eq!(
        decode_amf3(&input),
        Err(AmfError::UnsupportedExternalizable("com.example.Private".into()))
    );
}

#[test]
fn amf3_dictionary_keys_are_rendered() {
    // Keys 1 (integer), true, null and an array.
    let input = [
        0x11, 0x09, 0x00, // 4 entries, strong keys
        0x04, 0x01, 0x06, 0x03, b'a', // 1 → "a"
        0x03, 0x01, // true → null
        0x01, 0x02, // null → false
        0x09, 0x05, 0x01, 0x04, 0x01, 0x04, 0x02, 0x00, // [1, 2] → undefined
    ];
    assert_eq!(
        decode_amf3(&input),
        Ok((
            ecma(vec![
                ("1", s("a")),
                ("true", Value::Null),
                ("null", Value::Boolean(false)),
                ("[1, 2]", Value::Undefined),
            ]),
            input.len()
        ))
    );
}

#[test]
fn amf3_vectors_of_objects_and_unknown_markers() {
    // Vector.<*> ["foo", null, Foo3{foo: 3}] from Red5's AMF3IOTest.
    let mut input = vec![0x10, 0x07, 0x00, 0x01, 0x06, 0x07, b'f', b'o', b'o', 0x01, 0x0A, 0x13];
    input.extend_from_slice(&amf3_str("org.red5.test.Foo3"));
    input.extend_from_slice(&[0x00, 0x04, 0x03]);
    assert_eq!(
        decode_amf3(&input),
        Ok((
            arr(vec![
                s("foo"),
                Value::Null,
                typed("org.red5.test.Foo3", vec![("foo", n(3.0))])
            ]),
            input.len()
        ))
    );
    assert_eq!(
        decode_amf3(&[0x12]),
        Err(AmfError::UnknownMarker {
            format: Format::Amf3,
            marker: 0x12,
            at: 0
        })
    );
}

// ---------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------

#[test]
fn deep_amf0_nesting_is_refused_not_overflowed() {
    let input = [0x0A, 0, 0, 0, 1].repeat(100_000);
    assert_eq!(decode_amf0(&input), Err(AmfError::TooDeep { at: 5 * MAX_DEPTH }));
    assert!(matches!(decode_amf0_sequence(&input), Err(AmfError::TooDeep { .. })));
    // Exactly MAX_DEPTH nested containers are fine.
    let mut input = [0x0A, 0, 0, 0, 1].repeat(MAX_DEPTH);
    input.push(0x05);
    let (value, _) = decode_amf0(&input).expect("MAX_DEPTH levels decode");
    assert_eq!(depth(&value), MAX_DEPTH);
    // Objects too, and via AVM+.
    let input = [0x03, 0, 1, b'a'].repeat(100_000);
    assert!(matches!(decode_amf0(&input), Err(AmfError::TooDeep { .. })));
    let mut input = vec![0x11];
    input.extend([0x09, 0x03, 0x01].repeat(100_000));
    assert!(matches!(decode_amf0(&input), Err(AmfError::TooDeep { .. })));
}

#[test]
fn deep_amf3_nesting_is_refused_not_overflowed() {
    for unit in [
        &[0x09, 0x03, 0x01][..],             // arrays of one element
        &[0x0A, 0x0B, 0x01, 0x03, b'a'][..], // dynamic objects {a: …}
        &[0x10, 0x03, 0x00, 0x01][..],       // Vector.<*> of one element
        &[0x11, 0x03, 0x00, 0x01][..],       // dictionaries {null: …}
    ] {
        let input = unit.repeat(100_000);
        assert_eq!(
            decode_amf3(&input),
            Err(AmfError::TooDeep {
                at: unit.len() * MAX_DEPTH
            })
        );
    }
    let mut input = [0x09, 0x03, 0x01].repeat(MAX_DEPTH);
    input.push(0x01);
    let (value, _) = decode_amf3(&input).expect("MAX_DEPTH levels decode");
    assert_eq!(depth(&value), MAX_DEPTH);
}

#[test]
fn references_cannot_build_deeper_values() {
    // [40 nested arrays around null, 40 nested arrays around a reference to the
    // first chain]: each chain is fine, the expanded value would be 81 deep.
    let mut input = vec![0x09, 0x05, 0x01];
    input.extend([0x09, 0x03, 0x01].repeat(40));
    input.push(0x01);
    input.extend([0x09, 0x03, 0x01].repeat(40));
    input.extend_from_slice(&[0x09, 0x02]); // array reference 1
    assert!(matches!(decode_amf3(&input), Err(AmfError::TooDeep { .. })));
}

#[test]
fn length_fields_are_checked_before_allocating() {
    // AMF0 strict array claiming 0xFFFFFFFF elements in 10 bytes.
    assert_eq!(
        decode_amf0(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0]),
        Err(AmfError::UnexpectedEof {
            needed: 0xFFFF_FFFF,
            at: 5
        })
    );
    // AMF0 long string and XML claiming 4 GiB.
    for marker in [0x0C, 0x0F] {
        assert_eq!(
            decode_amf0(&[marker, 0xFF, 0xFF, 0xFF, 0xFF, b'a', b'b']),
            Err(AmfError::UnexpectedEof {
                needed: 0xFFFF_FFFF,
                at: 5
            })
        );
    }
    // AMF3: the largest U29 counts and lengths.
    let max = 0x0FFF_FFFF; // U29 0x1FFFFFFF with the inline bit
    let cases: [(&[u8], usize, usize); 7] = [
        (&[0x06, 0xFF, 0xFF, 0xFF, 0xFF], max, 5),
        (&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF], max, 5),
        (&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF], max, 5),
        (&[0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], max, 6),
        (&[0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00], max * 8, 6),
        (&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01], max, 7),
        (&[0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x00], max * 2, 6),
    ];
    for (input, needed, at) in cases {
        assert_eq!(
            decode_amf3(input),
            Err(AmfError::UnexpectedEof { needed, at }),
            "{input:02x?}"
        );
    }
    // An object with 2^25 - 1 sealed members in six bytes.
    assert_eq!(
        decode_amf3(&[0x0A, 0xFF, 0xFF, 0xFF, 0xF3, 0x01]),
        Err(AmfError::UnexpectedEof {
            needed: 0x01FF_FFFF,
            at: 6
        })
    );
}

/// An AMF3 array of `levels + 1` arrays: [], then each one [prev, prev] by
/// reference. Expanded, the last holds 2^levels leaves.
fn doubling_arrays(levels: u8) -> Vec<u8> {
    let mut input = vec![0x09, (levels + 1) << 1 | 1, 0x01, 0x09, 0x01, 0x01];
    for i in 1..=levels {
        // Object table: the outer array is 0, the empty array 1, array i is i + 1.
        input.extend_from_slice(&[0x09, 0x05, 0x01, 0x09, i << 1, 0x09, i << 1]);
    }
    input
}

#[test]
fn amf3_reference_amplification_hits_the_budget() {
    // A few levels expand fine.
    let (value, _) = decode_amf3(&doubling_arrays(4)).expect("small expansion");
    assert_eq!(nodes(&value), 1 + (1..=5).map(|i| (1 << i) - 1).sum::<usize>());

    let started = Instant::now();
    let input = doubling_arrays(40);
    assert!(input.len() < 300);
    assert!(matches!(
        decode_amf3(&input),
        Err(AmfError::Budget { limit, .. }) if limit == 4 * input.len() + 1024
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn amf0_reference_amplification_hits_the_budget() {
    // A sequence of strict arrays: [], then each [prev, prev] by reference.
    let mut input = vec![0x0A, 0, 0, 0, 0];
    for i in 0..40u8 {
        input.extend_from_slice(&[0x0A, 0, 0, 0, 2, 0x07, 0, i, 0x07, 0, i]);
    }
    let started = Instant::now();
    assert!(matches!(decode_amf0_sequence(&input), Err(AmfError::Budget { .. })));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn copied_text_counts_against_the_budget() {
    // A 3000-byte string, then string references to it.
    let text = "x".repeat(3000);
    let with_refs = |count: usize| {
        let header = count << 1 | 1; // two U29 bytes for these counts
        let mut input = vec![0x09, 0x80 | (header >> 7) as u8, (header & 0x7F) as u8, 0x01];
        input.extend_from_slice(&[0x06, 0xAE, 0x71]); // U29 3000 << 1 | 1
        input.extend_from_slice(text.as_bytes());
        input.extend([0x06, 0x00].repeat(count - 1));
        input
    };
    let (value, _) = decode_amf3(&with_refs(10)).expect("a few copies");
    assert_eq!(value, arr(vec![Value::String(text.clone()); 10]));
    assert!(matches!(decode_amf3(&with_refs(2000)), Err(AmfError::Budget { .. })));

    // A long class name reused by traits reference from many objects.
    let class = "C".repeat(3000);
    let count = 2000usize;
    let header = count << 1 | 1;
    let mut input = vec![0x09, 0x80 | (header >> 7) as u8, (header & 0x7F) as u8, 0x01];
    input.extend_from_slice(&[0x0A, 0x03, 0xAE, 0x71]);
    input.extend_from_slice(class.as_bytes());
    input.extend([0x0A, 0x01].repeat(count - 1));
    assert!(matches!(decode_amf3(&input), Err(AmfError::Budget { .. })));
}

#[test]
fn amf3_self_references_are_refused() {
    // {a: <reference to itself>}
    assert_eq!(
        decode_amf3(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x0A, 0x00, 0x01]),
        Err(AmfError::CyclicReference {
            table: RefTable::Amf3Object,
            index: 0,
            at: 5
        })
    );
    // [<reference to itself>]
    assert!(matches!(
        decode_amf3(&[0x09, 0x03, 0x01, 0x09, 0x00]),
        Err(AmfError::CyclicReference { index: 0, .. })
    ));
    // Bad indexes in each table.
    assert!(matches!(
        decode_amf3(&[0x0A, 0x02]),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf3Object,
            index: 1,
            len: 0,
            at: 0
        })
    ));
    assert!(matches!(
        decode_amf3(&[0x0A, 0x05]),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf3Traits,
            index: 1,
            len: 0,
            ..
        })
    ));
    assert!(matches!(
        decode_amf3(&[0x06, 0x04]),
        Err(AmfError::InvalidReference {
            table: RefTable::Amf3String,
            index: 2,
            len: 0,
            at: 1
        })
    ));
}

// ---------------------------------------------------------------------------------
// Value API
// ---------------------------------------------------------------------------------

#[test]
fn value_accessors_and_conversions() {
    let value = Value::object([
        ("code", Value::from("NetStream.Publish.Start")),
        ("level", Value::from(String::from("status"))),
        ("n", Value::from(3u32)),
        ("f", Value::from(1.5)),
        ("ok", Value::from(true)),
        ("code", Value::from("second")),
    ]);
    assert_eq!(
        value.get("code").and_then(Value::as_str),
        Some("NetStream.Publish.Start")
    );
    assert_eq!(value.get("n").and_then(Value::as_f64), Some(3.0));
    assert_eq!(value.get("f").and_then(Value::as_f64), Some(1.5));
    assert_eq!(value.get("ok").and_then(Value::as_bool), Some(true));
    assert_eq!(value.get("missing"), None);
    assert_eq!(value.properties().map(<[_]>::len), Some(6));
    assert_eq!(ecma(vec![("k", n(1.0))]).get("k"), Some(&n(1.0)));
    assert_eq!(s("x").get("k"), None);
    assert_eq!(s("x").properties(), None);
    assert_eq!(n(1.0).as_str(), None);
    assert_eq!(s("x").as_bool(), None);
}

#[test]
fn display_is_compact() {
    let status = Value::object([
        ("code", Value::from("NetStream.Publish.Start")),
        ("level", Value::from("status")),
    ]);
    assert_eq!(
        status.to_string(),
        r#"{code: "NetStream.Publish.Start", level: "status"}"#
    );
    let mixed = arr(vec![
        n(42.0),
        n(2.5),
        n(f64::NAN),
        Value::Null,
        Value::Undefined,
        Value::Date(1.0),
        Value::ByteArray(vec![1, 2]),
        ecma(vec![("two words", s("a\"b"))]),
        typed("a.B", vec![]),
        s(&"y".repeat(100)),
    ]);
    assert_eq!(
        mixed.to_string(),
        format!(
            r#"[42, 2.5, NaN, null, undefined, Date(1), ByteArray(2 bytes), {{"two words": "a\"b"}}, a.B {{}}, "{}…"]"#,
            "y".repeat(64)
        )
    );
}

#[test]
fn to_json_maps_every_variant() {
    let value = Value::object([
        ("u", Value::Undefined),
        ("null", Value::Null),
        ("int", n(42.0)),
        ("float", n(1.5)),
        ("nan", n(f64::NAN)),
        ("inf", n(f64::INFINITY)),
        ("date", Value::Date(1_000.0)),
        ("xml", Value::Xml("<a/>".into())),
        ("bytes", Value::ByteArray(vec![0, 255])),
        ("list", arr(vec![Value::from(true), s("x")])),
        ("map", ecma(vec![("k", n(-2.0)), ("k", n(3.0))])),
        ("typed", typed("C", vec![("a", Value::Null)])),
    ]);
    assert_eq!(
        value.to_json(),
        serde_json::json!({
            "u": null, "null": null, "int": 42, "float": 1.5, "nan": null, "inf": null,
            "date": 1000, "xml": "<a/>", "bytes": [0, 255], "list": [true, "x"],
            "map": {"k": -2}, "typed": {"a": null}
        })
    );
}

// ---------------------------------------------------------------------------------
// Property tests: round trips and arbitrary input
// ---------------------------------------------------------------------------------

fn arb_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<i32>().prop_map(f64::from),
        (-(1i64 << 29)..(1i64 << 29)).prop_map(|i| i as f64),
        prop::sample::select(vec![
            0.0,
            -0.0,
            268_435_455.0,
            268_435_456.0,
            -268_435_456.0,
            -268_435_457.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
            f64::MAX,
        ]),
        any::<f64>(),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9_.]{1,12}",
        any::<String>(),
        "[\\u{80}-\\u{10FFFF}]{0,20}",
    ]
}

fn arb_class() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![Just(String::new()), "[A-Za-z][A-Za-z.]{0,20}"])
}

/// Any value up to 5 containers deep; numbers include -0.0, infinities and NaN
/// (compared by bits with [`same`]).
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Undefined),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        arb_number().prop_map(Value::Number),
        arb_text().prop_map(Value::String),
        arb_number().prop_map(Value::Date),
        arb_text().prop_map(Value::Xml),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteArray),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        let members = prop::collection::vec((arb_text(), inner.clone()), 0..6).boxed();
        prop_oneof![
            prop::collection::vec(inner, 0..6).prop_map(Value::StrictArray),
            members.clone().prop_map(Value::EcmaArray),
            (arb_class(), members).prop_map(|(class_name, properties)| Value::Object { class_name, properties }),
        ]
    })
}

/// Runs every decoder on `bytes`; what decodes must be within the guarantees.
fn check_decoders(bytes: &[u8]) {
    let limit = 4 * bytes.len() + 1024;
    let check = |value: &Value| {
        assert!(depth(value) <= MAX_DEPTH);
        assert!(nodes(value) <= limit);
        // Encoding what was decoded never panics either.
        let _ = (amf0(value), amf3(value), value.to_json(), value.to_string());
    };
    for (value, used) in [decode_amf0(bytes), decode_amf3(bytes)].into_iter().flatten() {
        assert!(used <= bytes.len());
        check(&value);
    }
    if let Ok(values) = decode_amf0_sequence(bytes) {
        assert!(values.iter().map(nodes).sum::<usize>() <= limit);
        values.iter().for_each(check);
    }
}

proptest! {
    #[test]
    fn amf0_round_trip(value in arb_value()) {
        let bytes = amf0(&value);
        let (decoded, used) = decode_amf0(&bytes).expect("own encoding decodes");
        prop_assert_eq!(used, bytes.len());
        prop_assert!(same(&decoded, &value), "{:?} != {:?}", decoded, value);
    }

    #[test]
    fn amf3_round_trip(value in arb_value()) {
        let bytes = amf3(&value);
        let (decoded, used) = decode_amf3(&bytes).expect("own encoding decodes");
        prop_assert_eq!(used, bytes.len());
        let expected = normalize_amf3(&value);
        prop_assert!(same(&decoded, &expected), "{:?} != {:?}", decoded, expected);
    }

    #[test]
    fn amf0_sequence_round_trip(values in prop::collection::vec(arb_value(), 0..5)) {
        let mut bytes = Vec::new();
        for value in &values {
            encode_amf0(value, &mut bytes);
        }
        let decoded = decode_amf0_sequence(&bytes).expect("own encoding decodes");
        prop_assert_eq!(decoded.len(), values.len());
        for (d, v) in decoded.iter().zip(&values) {
            prop_assert!(same(d, v), "{:?} != {:?}", d, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_decoders(&bytes);
    }

    /// Bytes drawn mostly from the markers and small lengths, which reach deeper
    /// into the decoders than uniform noise.
    #[test]
    fn marker_soup_never_panics(noise in prop::collection::vec(any::<u8>(), 0..4096)) {
        // 5 in 8 bytes a marker or small length, else 0xFF, 0x80 or anything.
        let bytes: Vec<u8> = noise
            .into_iter()
            .map(|b| match b & 7 {
                0..=4 => (b >> 3) % 0x13,
                5 => 0xFF,
                6 => 0x80,
                _ => b,
            })
            .collect();
        check_decoders(&bytes);
        let mut avmplus = vec![0x11];
        avmplus.extend_from_slice(&bytes);
        check_decoders(&avmplus);
    }

    /// Valid encodings with a few bytes changed, cut or not.
    #[test]
    fn mutated_encodings_never_panic(
        value in arb_value(),
        as_amf3 in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = if as_amf3 { amf3(&value) } else { amf0(&value) };
        for (index, byte) in edits {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        check_decoders(&bytes);
        let end = cut.index(bytes.len() + 1);
        check_decoders(&bytes[..end]);
    }
}

#[test]
fn json_round_trips_through_amf() {
    let json = serde_json::json!({"room": "r1", "n": 2, "ok": true, "none": null, "list": [{"name": "a"}, "b"]});
    let amf = Value::from_json(&json);
    assert_eq!(amf.get("room").and_then(Value::as_str), Some("r1"));
    assert_eq!(amf.to_json(), json);
}
