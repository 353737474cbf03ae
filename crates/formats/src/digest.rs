//! BLAKE3 digest ids: the chunk id, and the macro that declares such ids (the server's pack
//! id is one too).

/// Declares a BLAKE3 digest newtype: 32 bytes, shown and parsed as 64 hex digits.
#[macro_export]
macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The id of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                Self(*$crate::__private::blake3::hash(bytes).as_bytes())
            }

            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// 64 lowercase hex digits; the form used in object paths, manifests and the index.
            pub fn to_hex(&self) -> String {
                $crate::__private::hex::encode(self.0)
            }

            /// Parses exactly 64 hex digits (either case); `None` for anything else.
            pub fn parse_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                $crate::__private::hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

digest_id!(
    /// A chunk's identity: BLAKE3 of its plaintext.
    ChunkId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_hex_round_trips() {
        let id = ChunkId::of(b"abc");
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, hex.to_lowercase());
        assert_eq!(id.to_string(), hex);
        assert_eq!(ChunkId::parse_hex(&hex), Some(id));
        assert_eq!(ChunkId::parse_hex(&hex.to_uppercase()), Some(id));
        assert_eq!(ChunkId::parse_hex(&hex[1..]), None);
        assert_eq!(ChunkId::parse_hex(&format!("{}g", &hex[1..])), None);
    }
}
