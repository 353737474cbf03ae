//! Typed identifiers. Every API id is a 24-hex ObjectId; each kind gets its own newtype so
//! a `GroupId` can never be passed where a `ClusterId` is expected.

use std::fmt;

/// Parses a 24-character hexadecimal ObjectId (either case); `None` for anything else.
pub fn parse_object_id(text: &str) -> Option<bson::oid::ObjectId> {
    if text.len() != 24 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    bson::oid::ObjectId::parse_str(text).ok()
}

macro_rules! object_id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(bson::oid::ObjectId);

        impl $name {
            /// A fresh id: time-ordered, unique across processes.
            pub fn generate() -> Self {
                Self(bson::oid::ObjectId::new())
            }

            /// Parses the 24-hex form; `None` when the text is not an ObjectId.
            pub fn parse(text: &str) -> Option<Self> {
                parse_object_id(text).map(Self)
            }

            /// The canonical lowercase hex form used on the wire and in storage.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.to_hex())
            }
        }
    };
}

object_id_type!(
    /// An organization.
    OrgId
);
object_id_type!(
    /// A project (`groupId` on the wire).
    GroupId
);
object_id_type!(
    /// A cluster, shard or config server replica set.
    ClusterId
);
object_id_type!(
    /// A programmatic API key's internal id (not its public key).
    ApiKeyId
);
object_id_type!(
    /// A snapshot of one cluster.
    SnapshotId
);
object_id_type!(
    /// A restore job.
    JobId
);
object_id_type!(
    /// The batch that groups the per-shard jobs of one sharded restore.
    BatchId
);
object_id_type!(
    /// A sharded-cluster checkpoint.
    CheckpointId
);
object_id_type!(
    /// One stored oplog slice (its object's name; never reused).
    OplogSliceId
);
object_id_type!(
    /// A claim on a pack's metadata row: a writer's (shared by writers of the same pack
    /// while the row lives) or a deletion's. Fresh for every row, so a claim taken before a
    /// row was deleted and written anew never matches the new one.
    ClaimToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_accept_only_24_hex_characters() {
        assert!(GroupId::parse("5e84b94c003f2d6370004f4e").is_some());
        assert!(GroupId::parse("5E84B94C003F2D6370004F4E").is_some());
        for bad in [
            "",
            "5e84b94c003f2d6370004f4",
            "5e84b94c003f2d6370004f4g",
            "5e84b94c003f2d6370004f4e0",
            "+e84b94c003f2d6370004f4e",
        ] {
            assert!(GroupId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_round_trip() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(&id.to_hex()), Some(id));
    }
}
