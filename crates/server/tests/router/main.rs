//! In-process tests of the router: snapshots of the wire shapes, and property tests that
//! throw malformed input at it.

mod properties;
mod restore_shapes;
mod snapshots;
mod support;
