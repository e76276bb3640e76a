//! Nothing here: the example is `tests/conformance.rs`.
