//! AMF0 (Adobe *Action Message Format -- AMF 0*, December 2007), sections 2.2-2.18
//! and 3.1.
//!
//! | marker | type (spec section)           | decodes to                          |
//! |--------|-------------------------------|-------------------------------------|
//! | `0x00` | number (2.2)                  | [`Value::Number`]                   |
//! | `0x01` | boolean (2.3)                 | [`Value::Boolean`]                  |
//! | `0x02` | string, u16 length (2.4)      | [`Value::String`]                   |
//! | `0x03` | anonymous object (2.5)        | [`Value::Object`], class `None`     |
//! | `0x04` | movieclip (2.6, reserved)     | error                               |
//! | `0x05` | null (2.7)                    | [`Value::Null`]                     |
//! | `0x06` | undefined (2.8)               | [`Value::Undefined`]                |
//! | `0x07` | reference, u16 index (2.9)    | a copy of the referenced value      |
//! | `0x08` | ECMA array (2.10)             | [`Value::EcmaArray`]                |
//! | `0x09` | object end (2.11)             | error where a value is expected     |
//! | `0x0A` | strict array (2.12)           | [`Value::StrictArray`]              |
//! | `0x0B` | date (2.13)                   | [`Value::Date`], time zone ignored  |
//! | `0x0C` | long string, u32 length (2.14)| [`Value::String`]                   |
//! | `0x0D` | unsupported (2.15)            | [`Value::Undefined`]                |
//! | `0x0E` | recordset (2.16, reserved)    | error                               |
//! | `0x0F` | XML document (2.17)           | [`Value::Xml`]                      |
//! | `0x10` | typed object (2.18)           | [`Value::Object`], class `Some`     |
//! | `0x11` | AVM+ switch (3.1)             | one AMF3 value, see [`super::amf3`] |
//!
//! Section 2.9's reference table holds the complex values (anonymous and typed
//! objects, ECMA and strict arrays) in the order their markers appear; an entry is
//! added when its marker is read, before its members, so a member referencing its
//! own ancestor is detected as a cycle. The ECMA array's count is only a hint
//! (encoders get it wrong) and is ignored: members are read up to the end marker.
//! An object or ECMA array member with the empty key is allowed as long as its value
//! does not start with the end marker `0x09` (Adobe's runtime writes such members).

use super::{amf3, truncate_utf8, AmfError, Format, Graph, Node, NodeId, Reader, RefTable, Value, MAX_DEPTH};

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// Decodes AMF0 values into a [`Graph`], sharing one reference table across the
/// values it decodes (one message body).
pub(crate) struct Decoder<'r, 'a> {
    reader: &'r mut Reader<'a>,
    graph: &'r mut Graph,
    /// Section 2.9's table: the node of each complex value, `None` while it is being
    /// decoded.
    refs: Vec<Option<NodeId>>,
}

impl<'r, 'a> Decoder<'r, 'a> {
    pub(crate) fn new(reader: &'r mut Reader<'a>, graph: &'r mut Graph) -> Self {
        Decoder {
            reader,
            graph,
            refs: Vec::new(),
        }
    }

    /// Whether the input is used up.
    pub(crate) fn at_end(&self) -> bool {
        self.reader.remaining() == 0
    }

    /// Decodes one value enclosed in `depth` containers.
    pub(crate) fn value(&mut self, depth: usize) -> Result<NodeId, AmfError> {
        let at = self.reader.pos();
        let marker = self.reader.u8()?;
        let leaf = match marker {
            NUMBER => Value::Number(self.reader.f64()?),
            BOOLEAN => Value::Boolean(self.reader.u8()? != 0),
            STRING => {
                let len = usize::from(self.reader.u16()?);
                Value::String(self.reader.utf8(len)?.to_owned())
            }
            LONG_STRING => Value::String(self.long_utf8()?.to_owned()),
            XML_DOCUMENT => Value::Xml(self.long_utf8()?.to_owned()),
            NULL => Value::Null,
            UNDEFINED | UNSUPPORTED => Value::Undefined,
            DATE => {
                let ms = self.reader.f64()?;
                let _time_zone = self.reader.u16()?; // reserved, "should be 0x0000"
                Value::Date(ms)
            }
            REFERENCE => return self.reference(at),
            AVMPLUS => return amf3::Decoder::new(self.reader, self.graph).value(depth),
            OBJECT | TYPED_OBJECT | ECMA_ARRAY | STRICT_ARRAY => return self.complex(marker, at, depth),
            _ => {
                return Err(AmfError::UnknownMarker {
                    format: Format::Amf0,
                    marker,
                    at,
                })
            }
        };
        self.graph.leaf(leaf, at)
    }

    /// A u32 length then that many bytes of UTF-8.
    fn long_utf8(&mut self) -> Result<&'a str, AmfError> {
        let len = self.reader.u32()?;
        // A u32 fits in usize on every target this crate builds for (32 and 64 bit).
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.reader.utf8(len)
    }

    /// A u16 length then that many bytes of UTF-8 (keys and class names).
    fn short_utf8(&mut self) -> Result<String, AmfError> {
        let len = usize::from(self.reader.u16()?);
        Ok(self.reader.utf8(len)?.to_owned())
    }

    /// A reference (section 2.9), its marker at `at` already read.
    fn reference(&mut self, at: usize) -> Result<NodeId, AmfError> {
        let index = usize::from(self.reader.u16()?);
        match self.refs.get(index) {
            Some(Some(id)) => {
                let id = *id;
                self.graph.share(id);
                Ok(id)
            }
            Some(None) => Err(AmfError::CyclicReference {
                table: RefTable::Amf0Object,
                index,
                at,
            }),
            None => Err(AmfError::InvalidReference {
                table: RefTable::Amf0Object,
                index,
                len: self.refs.len(),
                at,
            }),
        }
    }

    /// An object, typed object, ECMA array or strict array, its marker at `at`
    /// already read.
    fn complex(&mut self, marker: u8, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        if depth >= MAX_DEPTH {
            return Err(AmfError::TooDeep { at });
        }
        let slot = self.refs.len();
        self.refs.push(None);
        let node = match marker {
            OBJECT => Node::Object {
                class_name: None,
                properties: self.members(depth)?,
            },
            TYPED_OBJECT => {
                let class_name = Some(self.short_utf8()?);
                Node::Object {
                    class_name,
                    properties: self.members(depth)?,
                }
            }
            ECMA_ARRAY => {
                let _count_hint = self.reader.u32()?;
                Node::EcmaArray(self.members(depth)?)
            }
            _ => {
                let count = usize::try_from(self.reader.u32()?).unwrap_or(usize::MAX);
                // Every element takes at least one byte: check before allocating.
                self.reader.ensure(count)?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Node::StrictArray(items)
            }
        };
        let id = self.graph.push(node, at)?;
        self.refs[slot] = Some(id);
        Ok(id)
    }

    /// Object members up to and including the end marker: u16-length keys each
    /// followed by a value, then an empty key and `0x09`.
    fn members(&mut self, depth: usize) -> Result<Vec<(String, NodeId)>, AmfError> {
        let mut members = Vec::new();
        loop {
            let key = self.short_utf8()?;
            if key.is_empty() {
                let at = self.reader.pos();
                match self.reader.peek_u8() {
                    Some(OBJECT_END) => {
                        self.reader.u8()?;
                        return Ok(members);
                    }
                    Some(_) => {} // a member whose key is "", see the module doc
                    None => return Err(AmfError::UnexpectedEof { needed: 1, at }),
                }
            }
            let value = self.value(depth + 1)?;
            members.push((key, value));
        }
    }
}

/// Encodes `value` as AMF0, appending to `out`.
///
/// * `Number` → `0x00`; `Boolean` → `0x01`; `Null` → `0x05`; `Undefined` → `0x06`.
/// * `String` → `0x02`, or `0x0C` (long string) when longer than 65535 bytes.
/// * `Object` → `0x03` when anonymous, `0x10` (typed object) with a class name.
/// * `EcmaArray` → `0x08` with the exact count; `StrictArray` → `0x0A`.
/// * `Date` → `0x0B` with time zone 0; `Xml` → `0x0F`.
/// * `ByteArray` → AVM+ `0x11` then an AMF3 byte array (AMF0 has none).
/// * An object or ECMA array whose class name or some key is longer than 65535 bytes
///   (AMF0 keys have a u16 length) is written as AVM+ `0x11` then AMF3.
///
/// Never references. Text longer than 4 GiB is cut at a character boundary, and
/// values nested deeper than [`MAX_DEPTH`] encode but will not decode. Recursion
/// follows the value's depth.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Undefined => out.push(UNDEFINED),
        Value::Null => out.push(NULL),
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Err(_) => {
                out.push(LONG_STRING);
                write_long_utf8(s, out);
            }
        },
        Value::Object { class_name, properties } => {
            let class_fits = class_name.as_ref().is_none_or(|c| c.len() <= 0xFFFF);
            if !class_fits || !keys_fit(properties) {
                out.push(AVMPLUS);
                amf3::encode(value, out);
                return;
            }
            match class_name {
                None => out.push(OBJECT),
                Some(class) => {
                    out.push(TYPED_OBJECT);
                    write_short_utf8(class, out);
                }
            }
            write_members(properties, out);
        }
        Value::EcmaArray(properties) => {
            if !keys_fit(properties) {
                out.push(AVMPLUS);
                amf3::encode(value, out);
                return;
            }
            out.push(ECMA_ARRAY);
            let count = u32::try_from(properties.len()).unwrap_or(u32::MAX); // a hint only
            out.extend_from_slice(&count.to_be_bytes());
            write_members(properties, out);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Value::Date(ms) => {
            out.push(DATE);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        Value::Xml(s) => {
            out.push(XML_DOCUMENT);
            write_long_utf8(s, out);
        }
        Value::ByteArray(_) => {
            out.push(AVMPLUS);
            amf3::encode(value, out);
        }
    }
}

/// Whether every key fits a u16 length.
fn keys_fit(properties: &[(String, Value)]) -> bool {
    properties.iter().all(|(k, _)| k.len() <= 0xFFFF)
}

/// Members then the end marker (empty key, `0x09`). Keys must fit a u16 length.
fn write_members(properties: &[(String, Value)], out: &mut Vec<u8>) {
    for (key, value) in properties {
        write_short_utf8(key, out);
        encode(value, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// A u16 length and the text, cut to 65535 bytes (callers check it fits).
fn write_short_utf8(s: &str, out: &mut Vec<u8>) {
    let s = truncate_utf8(s, 0xFFFF);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes()); // fits: cut just above
    out.extend_from_slice(s.as_bytes());
}

/// A u32 length and the text, cut to 4 GiB - 1.
fn write_long_utf8(s: &str, out: &mut Vec<u8>) {
    let s = truncate_utf8(s, u32::MAX as usize);
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX); // fits: cut just above
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}
