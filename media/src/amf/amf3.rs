//! AMF3 (Adobe *Action Message Format -- AMF 3*, January 2013), sections 1.3
//! (U29 integers, UTF-8 strings), 2.2 (reference tables) and 3.1-3.16 (every type).
//!
//! | marker | type (spec section)            | decodes to                                  |
//! |--------|--------------------------------|---------------------------------------------|
//! | `0x00` | undefined (3.2)                | [`Value::Undefined`]                        |
//! | `0x01` | null (3.3)                     | [`Value::Null`]                             |
//! | `0x02` | false (3.4)                    | [`Value::Boolean`]                          |
//! | `0x03` | true (3.5)                     | [`Value::Boolean`]                          |
//! | `0x04` | integer, 29-bit signed (3.6)   | [`Value::Number`]                           |
//! | `0x05` | double (3.7)                   | [`Value::Number`]                           |
//! | `0x06` | string (3.8)                   | [`Value::String`]                           |
//! | `0x07` | XMLDocument (3.9)              | [`Value::Xml`]                              |
//! | `0x08` | date (3.10)                    | [`Value::Date`]                             |
//! | `0x09` | array (3.11)                   | [`Value::StrictArray`] or [`Value::EcmaArray`] |
//! | `0x0A` | object (3.12)                  | [`Value::Object`]                           |
//! | `0x0B` | XML (3.13)                     | [`Value::Xml`]                              |
//! | `0x0C` | ByteArray (3.14)               | [`Value::ByteArray`]                        |
//! | `0x0D`-`0x10` | vector of int, uint, double, object (3.15) | [`Value::StrictArray`] |
//! | `0x11` | dictionary (3.16)              | [`Value::EcmaArray`], keys as text          |
//!
//! Three reference tables (section 2.2), fresh for each top-level value: strings (the
//! empty string is never entered), traits, and objects (everything from `0x07` on
//! but vectors' elements, in the order their markers appear). An object enters its
//! table before its members are read, as in Adobe's runtime; a member referring to
//! it while it is still being read would make the value cyclic, and is refused
//! ([`AmfError::CyclicReference`]).
//!
//! Decoding details:
//! * An array with an associative part becomes an `EcmaArray` whose dense elements
//!   follow the associative members under the keys `"0"`, `"1"`, …; an array with
//!   only dense elements becomes a `StrictArray`.
//! * An object's sealed members come first, then its dynamic members; the class
//!   name `""` (anonymous) becomes `None`.
//! * Dictionary keys may be any value: a string key is used as is, any other key
//!   is rendered with [`Value`]'s `Display` (`1`, `true`, `{a: 1}`, …).
//! * Externalizable objects carry a class-private format. Only Flex's
//!   `flex.messaging.io.ArrayCollection` and `flex.messaging.io.ObjectProxy` are
//!   understood: their body is one AMF3 value, which stands for the object. Any
//!   other class is an [`AmfError::UnsupportedExternalizable`].

use std::rc::Rc;

use super::{copy_units, truncate_utf8, AmfError, Format, Graph, Node, NodeId, Reader, RefTable, Value, MAX_DEPTH};

const UNDEFINED: u8 = 0x00;
const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INTEGER: u8 = 0x04;
const DOUBLE: u8 = 0x05;
const STRING: u8 = 0x06;
const XML_DOCUMENT: u8 = 0x07;
const DATE: u8 = 0x08;
const ARRAY: u8 = 0x09;
const OBJECT: u8 = 0x0A;
const XML: u8 = 0x0B;
const BYTE_ARRAY: u8 = 0x0C;
const VECTOR_INT: u8 = 0x0D;
const VECTOR_UINT: u8 = 0x0E;
const VECTOR_DOUBLE: u8 = 0x0F;
const VECTOR_OBJECT: u8 = 0x10;
const DICTIONARY: u8 = 0x11;

/// The largest U29.
const U29_MAX: u32 = 0x1FFF_FFFF;
/// The range of the AMF3 integer type (29-bit two's complement).
const INT_MIN: f64 = -268_435_456.0;
const INT_MAX: f64 = 268_435_455.0;

/// The externalizable classes whose body is a single AMF3 value.
const VALUE_EXTERNALIZABLES: [&str; 2] = ["flex.messaging.io.ArrayCollection", "flex.messaging.io.ObjectProxy"];

/// A class description (section 3.12, "traits").
struct Traits {
    class_name: String,
    externalizable: bool,
    dynamic: bool,
    sealed: Vec<String>,
}

/// Decodes one AMF3 value (and what it contains) into a [`Graph`], with its own
/// reference tables.
pub(crate) struct Decoder<'r, 'a> {
    reader: &'r mut Reader<'a>,
    graph: &'r mut Graph,
    strings: Vec<String>,
    /// The node of each object-table entry, `None` while it is being decoded.
    objects: Vec<Option<NodeId>>,
    traits: Vec<Rc<Traits>>,
}

/// A U29 count or length as a `usize` (lossless on 32- and 64-bit targets).
fn len(u29: u32) -> usize {
    usize::try_from(u29).unwrap_or(usize::MAX)
}

impl<'r, 'a> Decoder<'r, 'a> {
    pub(crate) fn new(reader: &'r mut Reader<'a>, graph: &'r mut Graph) -> Self {
        Decoder {
            reader,
            graph,
            strings: Vec::new(),
            objects: Vec::new(),
            traits: Vec::new(),
        }
    }

    /// Decodes one value enclosed in `depth` containers.
    pub(crate) fn value(&mut self, depth: usize) -> Result<NodeId, AmfError> {
        let at = self.reader.pos();
        let marker = self.reader.u8()?;
        let leaf = match marker {
            UNDEFINED => Value::Undefined,
            NULL => Value::Null,
            FALSE => Value::Boolean(false),
            TRUE => Value::Boolean(true),
            INTEGER => {
                let u = self.u29()?;
                // Sign-extend from 29 bits; both arms fit an i32.
                let n = if u & 0x1000_0000 != 0 {
                    u as i32 - 0x2000_0000
                } else {
                    u as i32
                };
                Value::Number(f64::from(n))
            }
            DOUBLE => Value::Number(self.reader.f64()?),
            STRING => Value::String(self.string()?),
            XML_DOCUMENT | XML => return self.text_object(at),
            DATE => return self.date(at),
            BYTE_ARRAY => return self.byte_array(at),
            ARRAY => return self.array(at, depth),
            OBJECT => return self.object(at, depth),
            VECTOR_INT | VECTOR_UINT | VECTOR_DOUBLE => return self.number_vector(marker, at, depth),
            VECTOR_OBJECT => return self.object_vector(at, depth),
            DICTIONARY => return self.dictionary(at, depth),
            _ => {
                return Err(AmfError::UnknownMarker {
                    format: Format::Amf3,
                    marker,
                    at,
                })
            }
        };
        self.graph.leaf(leaf, at)
    }

    /// A U29 (section 1.3.1): 1 to 4 bytes, 7 bits from each of the first three (high
    /// bit set = more follow), 8 bits from the fourth.
    fn u29(&mut self) -> Result<u32, AmfError> {
        let mut value = 0u32;
        for _ in 0..3 {
            let byte = self.reader.u8()?;
            if byte & 0x80 == 0 {
                return Ok((value << 7) | u32::from(byte));
            }
            value = (value << 7) | u32::from(byte & 0x7F);
        }
        let byte = self.reader.u8()?;
        Ok((value << 8) | u32::from(byte))
    }

    /// Reads a U29 header whose low bit says inline (1) or reference (0). For a
    /// reference, resolves it in the object table and returns `Err(Ok(node))`; for an
    /// inline value returns the remaining bits.
    fn header(&mut self, at: usize) -> Result<Result<u32, NodeId>, AmfError> {
        let header = self.u29()?;
        if header & 1 == 1 {
            return Ok(Ok(header >> 1));
        }
        let index = len(header >> 1);
        match self.objects.get(index) {
            Some(Some(id)) => {
                let id = *id;
                self.graph.share(id);
                Ok(Err(id))
            }
            Some(None) => Err(AmfError::CyclicReference {
                table: RefTable::Amf3Object,
                index,
                at,
            }),
            None => Err(AmfError::InvalidReference {
                table: RefTable::Amf3Object,
                index,
                len: self.objects.len(),
                at,
            }),
        }
    }

    /// Fails with `TooDeep` if a container at `depth` would nest too deep.
    fn check_depth(depth: usize, at: usize) -> Result<(), AmfError> {
        if depth >= MAX_DEPTH {
            Err(AmfError::TooDeep { at })
        } else {
            Ok(())
        }
    }

    /// Adds a finished value without children to the object table.
    fn push_object(&mut self, value: Value, at: usize) -> Result<NodeId, AmfError> {
        let id = self.graph.leaf(value, at)?;
        self.objects.push(Some(id));
        Ok(id)
    }

    /// A string (section 1.3.2 / 3.8): U29 `length << 1 | 1` then UTF-8, or
    /// `index << 1` into the string table. Copies out of the table are charged.
    fn string(&mut self) -> Result<String, AmfError> {
        match self.string_index()? {
            None => Ok(String::new()),
            Some((index, at)) => {
                // `string_index` checked the index.
                let s = self.strings.get(index).map_or("", String::as_str);
                self.graph.charge(copy_units(s.len()), at)?;
                Ok(s.to_owned())
            }
        }
    }

    /// Reads a string into the table without copying it out; returns its table index
    /// and offset, or `None` for the empty string.
    fn string_index(&mut self) -> Result<Option<(usize, usize)>, AmfError> {
        let at = self.reader.pos();
        let header = self.u29()?;
        if header & 1 == 1 {
            let s = self.reader.utf8(len(header >> 1))?;
            if s.is_empty() {
                return Ok(None);
            }
            self.strings.push(s.to_owned());
            return Ok(Some((self.strings.len() - 1, at)));
        }
        let index = len(header >> 1);
        if index < self.strings.len() {
            Ok(Some((index, at)))
        } else {
            Err(AmfError::InvalidReference {
                table: RefTable::Amf3String,
                index,
                len: self.strings.len(),
                at,
            })
        }
    }

    /// XMLDocument or XML (sections 3.9, 3.13): U29 length and UTF-8, or a reference.
    fn text_object(&mut self, at: usize) -> Result<NodeId, AmfError> {
        match self.header(at)? {
            Err(id) => Ok(id),
            Ok(length) => {
                let text = self.reader.utf8(len(length))?.to_owned();
                self.push_object(Value::Xml(text), at)
            }
        }
    }

    /// Date (section 3.10): U29 flag then a double, or a reference.
    fn date(&mut self, at: usize) -> Result<NodeId, AmfError> {
        match self.header(at)? {
            Err(id) => Ok(id),
            Ok(_) => {
                let ms = self.reader.f64()?;
                self.push_object(Value::Date(ms), at)
            }
        }
    }

    /// ByteArray (section 3.14): U29 length and bytes, or a reference.
    fn byte_array(&mut self, at: usize) -> Result<NodeId, AmfError> {
        match self.header(at)? {
            Err(id) => Ok(id),
            Ok(length) => {
                let bytes = self.reader.take(len(length))?.to_vec();
                self.push_object(Value::ByteArray(bytes), at)
            }
        }
    }

    /// Reserves the object-table entry of a container being decoded.
    fn reserve(&mut self) -> usize {
        self.objects.push(None);
        self.objects.len() - 1
    }

    /// Adds a finished container to the graph and fills its table entry.
    fn finish(&mut self, slot: usize, node: Node, at: usize) -> Result<NodeId, AmfError> {
        let id = self.graph.push(node, at)?;
        self.fill(slot, id);
        Ok(id)
    }

    fn fill(&mut self, slot: usize, id: NodeId) {
        if let Some(entry) = self.objects.get_mut(slot) {
            *entry = Some(id);
        }
    }

    /// Array (section 3.11): U29 dense count, associative members up to the empty
    /// key, then the dense elements.
    fn array(&mut self, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        let dense = match self.header(at)? {
            Err(id) => return Ok(id),
            Ok(dense) => len(dense),
        };
        Self::check_depth(depth, at)?;
        let slot = self.reserve();
        let mut assoc = Vec::new();
        loop {
            let key = self.string()?;
            if key.is_empty() {
                break;
            }
            assoc.push((key, self.value(depth + 1)?));
        }
        // Every element takes at least one byte: check before allocating.
        self.reader.ensure(dense)?;
        let mut items = Vec::with_capacity(dense);
        for _ in 0..dense {
            items.push(self.value(depth + 1)?);
        }
        let node = if assoc.is_empty() {
            Node::StrictArray(items)
        } else {
            assoc.extend(items.into_iter().enumerate().map(|(i, id)| (i.to_string(), id)));
            Node::EcmaArray(assoc)
        };
        self.finish(slot, node, at)
    }

    /// Object (section 3.12): traits (inline or a reference), then sealed member
    /// values, then dynamic members up to the empty key; or an externalizable body.
    fn object(&mut self, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        let flags = match self.header(at)? {
            Err(id) => return Ok(id),
            Ok(flags) => flags,
        };
        Self::check_depth(depth, at)?;
        let slot = self.reserve();
        let traits = self.traits(flags, at)?;
        if traits.externalizable {
            if !VALUE_EXTERNALIZABLES.contains(&traits.class_name.as_str()) {
                return Err(AmfError::UnsupportedExternalizable(traits.class_name.clone()));
            }
            // The body (the collection's source array, the proxied object) stands
            // for the object, references to it included.
            let body = self.value(depth + 1)?;
            self.fill(slot, body);
            return Ok(body);
        }
        let mut properties = Vec::with_capacity(traits.sealed.len());
        for name in &traits.sealed {
            self.graph.charge(copy_units(name.len()), at)?;
            properties.push((name.clone(), self.value(depth + 1)?));
        }
        if traits.dynamic {
            loop {
                let key = self.string()?;
                if key.is_empty() {
                    break;
                }
                properties.push((key, self.value(depth + 1)?));
            }
        }
        let class_name = if traits.class_name.is_empty() {
            None
        } else {
            self.graph.charge(copy_units(traits.class_name.len()), at)?;
            Some(traits.class_name.clone())
        };
        let node = Node::Object { class_name, properties };
        self.finish(slot, node, at)
    }

    /// The traits of an object whose U29O header, past its inline bit, is `flags`:
    /// bit 0 clear = traits reference (index in the other bits); else bit 1 =
    /// externalizable, bit 2 = dynamic, the rest = sealed member count, followed by
    /// the class name and the sealed member names.
    fn traits(&mut self, flags: u32, at: usize) -> Result<Rc<Traits>, AmfError> {
        if flags & 1 == 0 {
            let index = len(flags >> 1);
            return self.traits.get(index).cloned().ok_or(AmfError::InvalidReference {
                table: RefTable::Amf3Traits,
                index,
                len: self.traits.len(),
                at,
            });
        }
        let externalizable = flags & 2 != 0;
        let dynamic = flags & 4 != 0;
        let class_name = self.string()?;
        let mut sealed = Vec::new();
        if !externalizable {
            let count = len(flags >> 3);
            // Every name takes at least one byte: check before allocating.
            self.reader.ensure(count)?;
            sealed.reserve(count);
            for _ in 0..count {
                sealed.push(self.string()?);
            }
        }
        // The table keeps these copies for as long as the value is decoded.
        let units = 1 + sealed.iter().map(|s| copy_units(s.len())).sum::<usize>();
        self.graph.charge(units + copy_units(class_name.len()), at)?;
        let traits = Rc::new(Traits {
            class_name,
            externalizable,
            dynamic,
            sealed,
        });
        self.traits.push(Rc::clone(&traits));
        Ok(traits)
    }

    /// Vector of int, uint or double (section 3.15): U29 count, fixed flag, then
    /// 4- or 8-byte big-endian elements.
    fn number_vector(&mut self, marker: u8, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        let count = match self.header(at)? {
            Err(id) => return Ok(id),
            Ok(count) => len(count),
        };
        Self::check_depth(depth, at)?;
        let _fixed = self.reader.u8()?;
        let size = if marker == VECTOR_DOUBLE { 8 } else { 4 };
        self.reader.ensure(count.saturating_mul(size))?;
        let slot = self.reserve();
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let element_at = self.reader.pos();
            let n = match marker {
                VECTOR_INT => f64::from(self.reader.i32()?),
                VECTOR_UINT => f64::from(self.reader.u32()?),
                _ => self.reader.f64()?,
            };
            items.push(self.graph.leaf(Value::Number(n), element_at)?);
        }
        self.finish(slot, Node::StrictArray(items), at)
    }

    /// Vector of objects (section 3.15): U29 count, fixed flag, element type name
    /// (ignored), then the elements as values.
    fn object_vector(&mut self, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        let count = match self.header(at)? {
            Err(id) => return Ok(id),
            Ok(count) => len(count),
        };
        Self::check_depth(depth, at)?;
        let _fixed = self.reader.u8()?;
        let _type_name = self.string_index()?;
        self.reader.ensure(count)?;
        let slot = self.reserve();
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.value(depth + 1)?);
        }
        self.finish(slot, Node::StrictArray(items), at)
    }

    /// Dictionary (section 3.16): U29 entry count, weak-keys flag, then key and value
    /// pairs, keys of any type.
    fn dictionary(&mut self, at: usize, depth: usize) -> Result<NodeId, AmfError> {
        let count = match self.header(at)? {
            Err(id) => return Ok(id),
            Ok(count) => len(count),
        };
        Self::check_depth(depth, at)?;
        let _weak_keys = self.reader.u8()?;
        // Every entry takes at least two bytes: check before allocating.
        self.reader.ensure(count.saturating_mul(2))?;
        let slot = self.reserve();
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let key_at = self.reader.pos();
            let key = self.value(depth + 1)?;
            let key = match self.graph.copy(key)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.graph.charge(copy_units(key.len()), key_at)?;
            entries.push((key, self.value(depth + 1)?));
        }
        self.finish(slot, Node::EcmaArray(entries), at)
    }
}

/// Encodes `value` as AMF3 without references, appending to `out`.
///
/// * `Undefined`, `Null`, `Boolean` → their markers.
/// * `Number` → integer when integral and in the 29-bit range (−0 excepted, to keep
///   its sign), else double.
/// * `String` → string; `Xml` → XML (`0x0B`); `Date` → date; `ByteArray` → ByteArray.
/// * `StrictArray` → array with only dense elements.
/// * `EcmaArray` → array with only associative members; but one with an empty key
///   (which would end the associative part) → dictionary with string keys.
/// * `Object` → dynamic object (anonymous, or with its class name) with no sealed
///   members; but one with an empty key (which would end the dynamic members) →
///   all members sealed.
///
/// Text longer than 2^28 − 1 bytes is cut at a character boundary, and collections
/// longer than the U29 count allows are cut; values nested deeper than
/// [`MAX_DEPTH`] encode but will not decode. Recursion follows the value's depth.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Undefined => out.push(UNDEFINED),
        Value::Null => out.push(NULL),
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::Number(n) => {
            if n.fract() == 0.0 && (INT_MIN..=INT_MAX).contains(n) && !(*n == 0.0 && n.is_sign_negative()) {
                out.push(INTEGER);
                // In the 29-bit range: the cast is exact and the mask keeps the
                // two's complement low 29 bits.
                write_u29((*n as i32 as u32) & U29_MAX, out);
            } else {
                out.push(DOUBLE);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            out.push(STRING);
            write_string(s, out);
        }
        Value::Xml(s) => {
            out.push(XML);
            write_string(s, out);
        }
        Value::Date(ms) => {
            out.push(DATE);
            write_u29(1, out);
            out.extend_from_slice(&ms.to_be_bytes());
        }
        Value::ByteArray(bytes) => {
            out.push(BYTE_ARRAY);
            let n = clamp(bytes.len(), 1);
            write_u29(inline(n, 1), out);
            out.extend_from_slice(&bytes[..n]);
        }
        Value::StrictArray(items) => {
            out.push(ARRAY);
            let n = clamp(items.len(), 1);
            write_u29(inline(n, 1), out);
            write_string("", out);
            for item in &items[..n] {
                encode(item, out);
            }
        }
        Value::EcmaArray(properties) => {
            if properties.iter().any(|(k, _)| k.is_empty()) {
                out.push(DICTIONARY);
                let n = clamp(properties.len(), 1);
                write_u29(inline(n, 1), out);
                out.push(0); // strong keys
                for (key, value) in &properties[..n] {
                    out.push(STRING);
                    write_string(key, out);
                    encode(value, out);
                }
            } else {
                out.push(ARRAY);
                write_u29(1, out); // no dense elements
                for (key, value) in properties {
                    write_string(key, out);
                    encode(value, out);
                }
                write_string("", out);
            }
        }
        Value::Object { class_name, properties } => {
            out.push(OBJECT);
            let class_name = class_name.as_deref().unwrap_or("");
            if properties.iter().any(|(k, _)| k.is_empty()) {
                // Inline object, inline traits, sealed, not dynamic.
                let n = clamp(properties.len(), 4);
                write_u29(inline(n, 4) | 0b0010, out);
                write_string(class_name, out);
                for (key, _) in &properties[..n] {
                    write_string(key, out);
                }
                for (_, value) in &properties[..n] {
                    encode(value, out);
                }
            } else {
                // Inline object, inline traits, dynamic, no sealed members.
                write_u29(0b1011, out);
                write_string(class_name, out);
                for (key, value) in properties {
                    write_string(key, out);
                    encode(value, out);
                }
                write_string("", out);
            }
        }
    }
}

/// `n` clamped to what a U29 holds after `shift` flag bits.
fn clamp(n: usize, shift: u32) -> usize {
    n.min(len(U29_MAX >> shift))
}

/// `n << shift` with the low (inline) bit set; `n` comes from [`clamp`] with the
/// same `shift`, so it fits.
fn inline(n: usize, shift: u32) -> u32 {
    (u32::try_from(n).unwrap_or(U29_MAX >> shift) << shift) | 1
}

/// A U29 (the low 29 bits of `v`).
fn write_u29(v: u32, out: &mut Vec<u8>) {
    let v = v & U29_MAX;
    // Each `as u8` keeps bits that the shifts and masks put in range.
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]);
    } else if v < 0x20_0000 {
        out.extend_from_slice(&[(v >> 14) as u8 | 0x80, ((v >> 7) & 0x7F) as u8 | 0x80, (v & 0x7F) as u8]);
    } else {
        out.extend_from_slice(&[
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            (v & 0xFF) as u8,
        ]);
    }
}

/// An inline string: U29 `length << 1 | 1` then UTF-8, cut to 2^28 − 1 bytes.
fn write_string(s: &str, out: &mut Vec<u8>) {
    let s = truncate_utf8(s, len(U29_MAX >> 1));
    write_u29(inline(s.len(), 1), out);
    out.extend_from_slice(s.as_bytes());
}
