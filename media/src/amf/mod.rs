//! AMF0 and AMF3: the value encodings of RTMP commands and data messages.
//!
//! * [`amf0`] implements Adobe's *Action Message Format -- AMF 0* specification
//!   (sections 2.2-2.18: every type marker, the reference table of section 2.9 and
//!   the AVM+ marker of section 3.1 that switches one value to AMF3).
//! * [`amf3`] implements *Action Message Format -- AMF 3* (sections 1.3, 2.2 and
//!   3.1-3.16: U29 integers, the string, object and traits reference tables, every type
//!   marker up to the dictionary), plus the two Flex externalizable classes that
//!   real servers send (`flex.messaging.io.ArrayCollection` and `ObjectProxy`).
//!
//! Both formats decode into one model, [`Value`], and encode from it.
//!
//! # Hostile input
//!
//! Every decoder here treats its input as hostile, and guarantees:
//!
//! * **no panic**, whatever the bytes;
//! * **bounded recursion**: containers nest at most [`MAX_DEPTH`] levels, in the input
//!   and in the decoded value, else [`AmfError::TooDeep`];
//! * **no allocation from a length field** before checking that the input still holds
//!   at least that many bytes (a strict array of `0xFFFF_FFFF` elements in ten bytes
//!   is an [`AmfError::UnexpectedEof`], not a 64 GiB allocation);
//! * **bounded output**: references (AMF0 `0x07`, AMF3 object, string and traits
//!   references) are resolved by copying, and every node produced, every copied node
//!   and every 64 bytes of copied text count against a budget of
//!   `4 * input.len() + 1024` units, else [`AmfError::Budget`]. A few hundred bytes
//!   of references doubling one another therefore fail fast instead of producing
//!   2^40 nodes;
//! * **acyclic output**: a reference to an object that is still being decoded (a child
//!   pointing at its parent) is an [`AmfError::CyclicReference`].
//!
//! Internally a decoder first builds a graph in which references are shared node
//! ids (so decoding itself is linear in the input), then expands it into the tree
//! that [`Value`] is, moving nodes that are used once and copying, against the
//! budget, the ones that references share.

pub mod amf0;
pub mod amf3;

#[cfg(test)]
mod tests;

use std::fmt;

/// How many containers (objects, arrays, vectors, dictionaries) may enclose a value,
/// in the input and in the decoded [`Value`]. One more level is an [`AmfError::TooDeep`].
pub const MAX_DEPTH: usize = 64;

/// One AMF value, AMF0 and AMF3 alike.
///
/// Decoding maps both formats onto these variants (the doc of each says from what);
/// encoding picks the closest marker of the target format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// AMF0 undefined (`0x06`) and unsupported (`0x0D`); AMF3 undefined.
    Undefined,
    /// AMF0 and AMF3 null.
    Null,
    /// AMF0 boolean; AMF3 false and true.
    Boolean(bool),
    /// AMF0 number; AMF3 integer and double both decode to `Number`.
    Number(f64),
    /// AMF0 string and long string; AMF3 string.
    String(String),
    /// AMF0 anonymous object (`class_name: None`) and typed object (`Some`); AMF3
    /// object, sealed members then dynamic members, flattened in that order, with the
    /// anonymous class name `""` mapped to `None`.
    Object {
        /// The class alias, `None` for an anonymous object.
        class_name: Option<String>,
        /// The members, in wire order; keys may repeat if the wire repeats them.
        properties: Vec<(String, Value)>,
    },
    /// AMF0 ECMA array; AMF3 array with an associative part (its dense entries are
    /// appended with the keys `"0"`, `"1"`, …); AMF3 dictionary (keys rendered as text).
    EcmaArray(Vec<(String, Value)>),
    /// AMF0 strict array; AMF3 array without associative part; AMF3 vectors of int,
    /// uint, double and object.
    StrictArray(Vec<Value>),
    /// A date in milliseconds since the Unix epoch (the AMF0 time zone is ignored).
    Date(f64),
    /// AMF0 XML document; AMF3 XMLDocument and XML.
    Xml(String),
    /// AMF3 ByteArray.
    ByteArray(Vec<u8>),
}

/// Which format a marker belongs to, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// AMF0.
    Amf0,
    /// AMF3.
    Amf3,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Amf0 => "AMF0",
            Format::Amf3 => "AMF3",
        })
    }
}

/// The reference table a reference points into, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefTable {
    /// AMF0 complex objects (objects, typed objects, ECMA and strict arrays).
    Amf0Object,
    /// AMF3 strings.
    Amf3String,
    /// AMF3 objects (objects, arrays, dates, XML, byte arrays, vectors, dictionaries).
    Amf3Object,
    /// AMF3 traits (class descriptions).
    Amf3Traits,
}

impl fmt::Display for RefTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefTable::Amf0Object => "AMF0 object",
            RefTable::Amf3String => "AMF3 string",
            RefTable::Amf3Object => "AMF3 object",
            RefTable::Amf3Traits => "AMF3 traits",
        })
    }
}

/// Why a decode failed. Every variant says where: `at` is a byte offset into the
/// slice given to the decoding function.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum AmfError {
    /// The input ends (or a length field claims more bytes than remain) before the
    /// value does: reading at offset `at` needed `needed` bytes.
    #[error("unexpected end of input: {needed} byte(s) needed at byte {at}")]
    UnexpectedEof {
        /// How many bytes the read (or the length field) needed.
        needed: usize,
        /// Where the read started.
        at: usize,
    },
    /// A type marker that the format does not define or that this decoder refuses
    /// (AMF0 movieclip `0x04`, recordset `0x0E`, a stray object-end `0x09`).
    #[error("unknown or unsupported {format} type marker 0x{marker:02x} at byte {at}")]
    UnknownMarker {
        /// The format being decoded.
        format: Format,
        /// The marker byte.
        marker: u8,
        /// Its offset.
        at: usize,
    },
    /// Containers nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep {
        /// Offset of the container that is one level too deep.
        at: usize,
    },
    /// Copying referenced values (or the decoded nodes themselves) exceeds the
    /// budget of `4 * input length + 1024` units.
    #[error("reference expansion exceeds budget of {limit} units at byte {at}")]
    Budget {
        /// The budget of this decode.
        limit: usize,
        /// Offset of the value being produced when the budget ran out.
        at: usize,
    },
    /// A string (or key, class name, XML text) is not valid UTF-8.
    #[error("invalid UTF-8 in string at byte {at}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// An AMF3 externalizable object of a class whose private format is unknown
    /// (anything but `flex.messaging.io.ArrayCollection` and `ObjectProxy`).
    #[error("unsupported AMF3 externalizable class {0:?}")]
    UnsupportedExternalizable(String),
    /// A reference index past the end of its table.
    #[error("{table} reference {index} at byte {at} is out of range (the table holds {len})")]
    InvalidReference {
        /// The table referred to.
        table: RefTable,
        /// The index read.
        index: usize,
        /// How many entries the table held.
        len: usize,
        /// Offset of the reference.
        at: usize,
    },
    /// A reference to an object that is still being decoded (its own ancestor).
    #[error("cyclic reference at byte {at}: {table} reference {index} points to a value still being decoded")]
    CyclicReference {
        /// The table referred to.
        table: RefTable,
        /// The index read.
        index: usize,
        /// Offset of the reference.
        at: usize,
    },
}

/// Decodes one AMF0 value at the start of `input`; returns it and the number of bytes
/// consumed.
///
/// The AVM+ marker `0x11` switches to AMF3 for exactly that one value (with fresh
/// AMF3 reference tables for each `0x11` value). AMF0 references (`0x07`) resolve
/// within this one value.
pub fn decode_amf0(input: &[u8]) -> Result<(Value, usize), AmfError> {
    let mut reader = Reader::new(input);
    let mut graph = Graph::new(input.len());
    let root = amf0::Decoder::new(&mut reader, &mut graph).value(0)?;
    let value = graph.materialize(root)?;
    Ok((value, reader.pos()))
}

/// Decodes AMF0 values back to back until the input ends: the body of an RTMP
/// type-20 command or type-18 data message, and of types 17/15 after their leading
/// `0x00` byte.
///
/// AMF0 references (`0x07`) may point into earlier values of the same sequence.
pub fn decode_amf0_sequence(input: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut reader = Reader::new(input);
    let mut graph = Graph::new(input.len());
    let mut roots = Vec::new();
    {
        let mut decoder = amf0::Decoder::new(&mut reader, &mut graph);
        while !decoder.at_end() {
            roots.push(decoder.value(0)?);
        }
    }
    // Expand only after the whole sequence is read: a later value may reference an
    // earlier one, so which nodes are shared is known only now.
    roots.into_iter().map(|root| graph.materialize(root)).collect()
}

/// Decodes one AMF3 value at the start of `input` (with fresh reference tables);
/// returns it and the number of bytes consumed.
pub fn decode_amf3(input: &[u8]) -> Result<(Value, usize), AmfError> {
    let mut reader = Reader::new(input);
    let mut graph = Graph::new(input.len());
    let root = amf3::Decoder::new(&mut reader, &mut graph).value(0)?;
    let value = graph.materialize(root)?;
    Ok((value, reader.pos()))
}

/// Encodes `value` as AMF0, appending to `out`.
///
/// An `Object` with a class name becomes a typed object (`0x10`), strings longer than
/// 65535 bytes long strings (`0x0C`), a `ByteArray` an AVM+ `0x11` switch followed by
/// an AMF3 byte array; see [`amf0::encode`] for the rest.
pub fn encode_amf0(value: &Value, out: &mut Vec<u8>) {
    amf0::encode(value, out);
}

/// Encodes `value` as AMF3 without references, appending to `out`: integral numbers
/// in the 29-bit range as AMF3 integers (else doubles), objects as dynamic objects
/// (anonymous, or with their class name) with no sealed members; see
/// [`amf3::encode`] for the rest.
pub fn encode_amf3(value: &Value, out: &mut Vec<u8>) {
    amf3::encode(value, out);
}

impl Value {
    /// The text of a `String` or `Xml`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Xml(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a `Number` (or the milliseconds of a `Date`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) | Value::Date(n) => Some(*n),
            _ => None,
        }
    }

    /// The flag of a `Boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Property lookup for `Object` and `EcmaArray` (the first property with that key).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The properties of an `Object` or `EcmaArray`, in wire order.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object { properties, .. } | Value::EcmaArray(properties) => Some(properties),
            _ => None,
        }
    }

    /// JSON for logs and HTTP hooks: `Undefined`/`Null` → null; `Number` and `Date` →
    /// number (integral values within ±2^53 as JSON integers, NaN and infinities as
    /// null); `Xml` → string; `ByteArray` → array of numbers; `Object` and `EcmaArray` →
    /// JSON object (class name dropped; the first of repeated keys wins; key order is
    /// not kept); `StrictArray` → array.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Undefined | Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Number(n) | Value::Date(n) => json_number(*n),
            Value::String(s) | Value::Xml(s) => J::String(s.clone()),
            Value::Object { properties, .. } | Value::EcmaArray(properties) => {
                let mut map = serde_json::Map::new();
                for (k, v) in properties {
                    if !map.contains_key(k) {
                        map.insert(k.clone(), v.to_json());
                    }
                }
                J::Object(map)
            }
            Value::StrictArray(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::ByteArray(bytes) => J::Array(bytes.iter().map(|b| J::from(*b)).collect()),
        }
    }

    /// AMF for JSON, as server-to-client calls carry it: null → `Null`;
    /// numbers → `Number`; objects → anonymous objects (keys in JSON order);
    /// arrays → strict arrays.
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(*b),
            J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::StrictArray(items.iter().map(Value::from_json).collect()),
            J::Object(map) => Value::object(map.iter().map(|(k, v)| (k.clone(), Value::from_json(v)))),
        }
    }

    /// Convenience constructor for an anonymous object:
    /// `Value::object([("code", Value::from("x")), ("level", Value::from("status"))])`.
    pub fn object<I, K>(props: I) -> Value
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Object {
            class_name: None,
            properties: props.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }
}

/// A JSON number for `n`: an integer when `n` is integral and exactly representable,
/// else a float, and null for NaN and infinities (JSON has neither).
fn json_number(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT && !(n == 0.0 && n.is_sign_negative()) {
        // In range and integral, so the conversion is exact.
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Number(f64::from(n))
    }
}

/// Strings longer than this many characters are cut in [`Value`]'s `Display`.
const DISPLAY_STRING_CHARS: usize = 64;

/// A compact JSON-like form for logs, e.g.
/// `{code: "NetStream.Publish.Start", level: "status"}`: keys bare when they are
/// plain words, strings quoted and cut after 64 characters, typed objects prefixed
/// with their class name, `Date(ms)`, `Xml("…")`, `ByteArray(n bytes)`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Undefined => f.write_str("undefined"),
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Number(n) => write_number(f, *n),
            Value::String(s) => write_short_string(f, s),
            Value::Object { class_name, properties } => {
                if let Some(class) = class_name {
                    write!(f, "{class} ")?;
                }
                write_properties(f, properties)
            }
            Value::EcmaArray(properties) => write_properties(f, properties),
            Value::StrictArray(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Date(ms) => {
                f.write_str("Date(")?;
                write_number(f, *ms)?;
                f.write_str(")")
            }
            Value::Xml(s) => {
                f.write_str("Xml(")?;
                write_short_string(f, s)?;
                f.write_str(")")
            }
            Value::ByteArray(bytes) => write!(f, "ByteArray({} bytes)", bytes.len()),
        }
    }
}

/// Writes a number the short way: integers without a fraction (`42`), others as
/// Rust's `Debug` does (`3.14`, `1e301`, `NaN`, `inf`).
fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        write!(f, "{n}")
    } else {
        write!(f, "{n:?}")
    }
}

/// Writes `{key: value, …}`, keys bare when they are plain words.
fn write_properties(f: &mut fmt::Formatter<'_>, properties: &[(String, Value)]) -> fmt::Result {
    f.write_str("{")?;
    for (i, (k, v)) in properties.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '@' | '.' | '-'));
        if plain {
            f.write_str(k)?;
        } else {
            write_short_string(f, k)?;
        }
        write!(f, ": {v}")?;
    }
    f.write_str("}")
}

/// Writes `s` quoted and escaped, cut after [`DISPLAY_STRING_CHARS`] characters.
fn write_short_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut chars = s.chars();
    for c in chars.by_ref().take(DISPLAY_STRING_CHARS) {
        write!(f, "{}", c.escape_debug())?;
    }
    if chars.next().is_some() {
        f.write_str("…")?;
    }
    f.write_str("\"")
}

// ---------------------------------------------------------------------------------
// Shared decoding machinery: a bounds-checked reader and the node graph.
// ---------------------------------------------------------------------------------

/// A cursor over the input whose every read is bounds-checked.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { input, pos: 0 }
    }

    /// The offset of the next byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Fails unless at least `n` bytes remain; consumes nothing. Used before
    /// allocating for a count of elements that each take at least one byte.
    pub(crate) fn ensure(&self, n: usize) -> Result<(), AmfError> {
        if n > self.remaining() {
            Err(AmfError::UnexpectedEof {
                needed: n,
                at: self.pos,
            })
        } else {
            Ok(())
        }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        self.ensure(n)?;
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AmfError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    pub(crate) fn u16(&mut self) -> Result<u16, AmfError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, AmfError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, AmfError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, AmfError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// The next `n` bytes as UTF-8 text.
    pub(crate) fn utf8(&mut self, n: usize) -> Result<&'a str, AmfError> {
        let at = self.pos;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|e| AmfError::InvalidUtf8 {
            at: at + e.valid_up_to(),
        })
    }
}

/// Index of a node in a [`Graph`].
pub(crate) type NodeId = usize;

/// A decoded node. Containers hold the ids of their children, so a reference is
/// just a second parent of a node, and decoding never copies.
#[derive(Debug)]
pub(crate) enum Node {
    /// A value without children.
    Leaf(Value),
    /// See [`Value::Object`].
    Object {
        class_name: Option<String>,
        properties: Vec<(String, NodeId)>,
    },
    /// See [`Value::EcmaArray`].
    EcmaArray(Vec<(String, NodeId)>),
    /// See [`Value::StrictArray`].
    StrictArray(Vec<NodeId>),
    /// Moved out into the result by [`Graph::materialize`].
    Taken,
}

/// Bytes of copied text or binary that cost one budget unit.
const BYTES_PER_UNIT: usize = 64;

/// The budget units of copying `len` bytes.
pub(crate) fn copy_units(len: usize) -> usize {
    len / BYTES_PER_UNIT
}

/// The nodes of one decode, with the budget that bounds them and their copies.
pub(crate) struct Graph {
    nodes: Vec<Node>,
    /// Whether a reference points at the node (then it is copied, never moved).
    shared: Vec<bool>,
    /// Where each node started in the input, for error messages.
    offsets: Vec<usize>,
    spent: usize,
    limit: usize,
}

impl Graph {
    /// A graph for decoding an input of `input_len` bytes.
    pub(crate) fn new(input_len: usize) -> Self {
        Graph {
            nodes: Vec::new(),
            shared: Vec::new(),
            offsets: Vec::new(),
            spent: 0,
            limit: input_len.saturating_mul(4).saturating_add(1024),
        }
    }

    /// Spends `units` of the budget for something produced at byte `at`.
    pub(crate) fn charge(&mut self, units: usize, at: usize) -> Result<(), AmfError> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.limit {
            Err(AmfError::Budget { limit: self.limit, at })
        } else {
            Ok(())
        }
    }

    /// Adds a node that started at byte `at` (one budget unit).
    pub(crate) fn push(&mut self, node: Node, at: usize) -> Result<NodeId, AmfError> {
        self.charge(1, at)?;
        self.nodes.push(node);
        self.shared.push(false);
        self.offsets.push(at);
        Ok(self.nodes.len() - 1)
    }

    /// Adds a leaf node.
    pub(crate) fn leaf(&mut self, value: Value, at: usize) -> Result<NodeId, AmfError> {
        self.push(Node::Leaf(value), at)
    }

    /// Records that a reference points at `id`: it will be copied wherever it is used.
    pub(crate) fn share(&mut self, id: NodeId) {
        if let Some(flag) = self.shared.get_mut(id) {
            *flag = true;
        }
    }

    /// Builds the [`Value`] tree rooted at `root`.
    pub(crate) fn materialize(&mut self, root: NodeId) -> Result<Value, AmfError> {
        self.build(root, 0, true)
    }

    /// Builds a copy of the tree rooted at `id`, leaving the graph as it is.
    pub(crate) fn copy(&mut self, id: NodeId) -> Result<Value, AmfError> {
        self.build(id, 0, false)
    }

    /// Builds the value of node `id` at nesting `depth`. With `movable`, a node that no
    /// reference shares is moved out of the graph: it has one parent, which was
    /// itself moved, so nothing will ask for it again. Anything else is copied, and
    /// the copy is charged to the budget.
    fn build(&mut self, id: NodeId, depth: usize, movable: bool) -> Result<Value, AmfError> {
        let at = self.offsets.get(id).copied().unwrap_or(0);
        let movable = movable && !self.shared.get(id).copied().unwrap_or(true);
        let node = if movable {
            match self.nodes.get_mut(id) {
                Some(slot) => std::mem::replace(slot, Node::Taken),
                None => Node::Taken,
            }
        } else {
            let copy = match self.nodes.get(id) {
                Some(node) => shallow_copy(node),
                None => (Node::Taken, 0),
            };
            self.charge(1 + copy.1, at)?;
            copy.0
        };
        let is_container = !matches!(node, Node::Leaf(_) | Node::Taken);
        if is_container && depth >= MAX_DEPTH {
            return Err(AmfError::TooDeep { at });
        }
        Ok(match node {
            Node::Leaf(value) => value,
            Node::Object { class_name, properties } => Value::Object {
                class_name,
                properties: self.build_properties(properties, depth, movable)?,
            },
            Node::EcmaArray(properties) => Value::EcmaArray(self.build_properties(properties, depth, movable)?),
            Node::StrictArray(items) => Value::StrictArray(
                items
                    .into_iter()
                    .map(|child| self.build(child, depth + 1, movable))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Taken => {
                // Unreachable: every id handed out refers to a pushed node, and a node
                // is moved out only when it has a single parent that was itself moved
                // (see `build`), so no path leads to a taken node. Degrade rather than
                // panic if that reasoning were ever wrong.
                debug_assert!(false, "AMF graph node {id} used after being moved");
                Value::Undefined
            }
        })
    }

    fn build_properties(
        &mut self,
        properties: Vec<(String, NodeId)>,
        depth: usize,
        movable: bool,
    ) -> Result<Vec<(String, Value)>, AmfError> {
        properties
            .into_iter()
            .map(|(k, child)| Ok((k, self.build(child, depth + 1, movable)?)))
            .collect()
    }
}

/// A copy of `node` whose children are still ids, with the budget units of the
/// bytes it copies.
fn shallow_copy(node: &Node) -> (Node, usize) {
    let keys = |props: &[(String, NodeId)]| props.iter().map(|(k, _)| copy_units(k.len())).sum();
    match node {
        Node::Leaf(value) => {
            let bytes = match value {
                Value::String(s) | Value::Xml(s) => s.len(),
                Value::ByteArray(b) => b.len(),
                _ => 0,
            };
            (Node::Leaf(value.clone()), copy_units(bytes))
        }
        Node::Object { class_name, properties } => {
            let units = keys(properties) + class_name.as_ref().map_or(0, |c| copy_units(c.len()));
            (
                Node::Object {
                    class_name: class_name.clone(),
                    properties: properties.clone(),
                },
                units,
            )
        }
        Node::EcmaArray(properties) => (Node::EcmaArray(properties.clone()), keys(properties)),
        Node::StrictArray(items) => (Node::StrictArray(items.clone()), 0),
        Node::Taken => (Node::Taken, 0),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
