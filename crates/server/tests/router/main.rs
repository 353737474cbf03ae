//! In-process tests of the router: snapshots of the wire shapes, the answers to malformed
//! path ids, and property tests that throw malformed input at it.

mod path_ids;
mod properties;
mod restore_shapes;
mod snapshots;
mod support;
