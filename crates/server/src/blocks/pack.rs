//! Packs: the new chunks of one upload batch, stored as one object.
//!
//! A pack is the plain concatenation of its chunks' object bytes (format in
//! [`super::chunk`]), so every chunk in it keeps its own header and check and is verified on
//! its own when read. One object per batch (about 8 MiB) instead of one per chunk (about
//! 32 KiB) is what keeps imports fast: creating a file per chunk cost more server time than
//! compressing it, and an object store charges per request.
//!
//! A pack has no table of contents: the metadata index records where each chunk lies
//! ([`ChunkLocation`]). Without the index a pack can still be split by walking the chunk
//! headers (each gives its payload length), and each chunk's id recovered by decoding it.
//!
//! A pack's id is the BLAKE3 of its bytes, so writing the same pack twice writes the same
//! object.

use bytes::{Bytes, BytesMut};

use super::{ChunkId, EncodedChunk};

rewind_formats::digest_id!(
    /// A pack's identity: BLAKE3 of its bytes.
    PackId
);

/// Where a chunk's object bytes lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// An object of its own under `chunks/`: how chunks were stored before packs. Such
    /// chunks are still read and collected, never written.
    Loose,
    /// `len` bytes at `offset` of the pack `pack`.
    Packed { pack: PackId, offset: u64, len: u32 },
}

/// A chunk and where its object bytes are, as the metadata index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkLocation {
    pub id: ChunkId,
    pub placement: Placement,
}

/// A pack ready to store: its bytes and where each of its chunks lies. Built only by
/// [`PackBuilder`], so the locations match the bytes.
#[derive(Debug, Clone)]
pub struct Pack {
    id: PackId,
    bytes: Bytes,
    chunks: Vec<ChunkLocation>,
}

impl Pack {
    pub fn id(&self) -> PackId {
        self.id
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The location of every chunk in the pack, in the order they were added.
    pub fn chunks(&self) -> &[ChunkLocation] {
        &self.chunks
    }
}

/// Assembles a [`Pack`] from encoded chunks.
#[derive(Debug, Default)]
pub struct PackBuilder {
    bytes: BytesMut,
    /// `(chunk, offset, length)` of each object appended so far.
    entries: Vec<(ChunkId, u64, u32)>,
}

impl PackBuilder {
    /// A builder whose buffer holds `bytes` without growing.
    pub fn with_capacity(bytes: usize) -> Self {
        PackBuilder {
            bytes: BytesMut::with_capacity(bytes),
            entries: Vec::new(),
        }
    }

    /// Appends `chunk`'s object bytes.
    pub fn push(&mut self, chunk: &EncodedChunk) {
        let offset = self.bytes.len() as u64;
        chunk.write_object(&mut self.bytes);
        // An object is at most MAX_OBJECT_BYTES long, far below u32::MAX.
        let len = (self.bytes.len() as u64 - offset) as u32;
        self.entries.push((chunk.id(), offset, len));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished pack: its id hashed over all its bytes.
    pub fn finish(self) -> Pack {
        let bytes = self.bytes.freeze();
        let id = PackId::of(&bytes);
        let chunks = self
            .entries
            .into_iter()
            .map(|(chunk, offset, len)| ChunkLocation {
                id: chunk,
                placement: Placement::Packed {
                    pack: id,
                    offset,
                    len,
                },
            })
            .collect();
        Pack { id, bytes, chunks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::encode_chunk;
    use crate::blocks::test_data::{compressible_bytes, random_bytes};

    #[test]
    fn a_pack_is_its_chunks_objects_end_to_end_and_named_by_its_bytes() {
        let chunks = [
            encode_chunk(&compressible_bytes(20_000)).expect("encode"),
            encode_chunk(&random_bytes(4, 9_000)).expect("encode"),
            encode_chunk(b"x").expect("encode"),
        ];
        let mut builder = PackBuilder::with_capacity(64 * 1024);
        assert!(builder.is_empty());
        for chunk in &chunks {
            builder.push(chunk);
        }
        let pack = builder.finish();
        let concatenated: Vec<u8> = chunks
            .iter()
            .flat_map(|c| c.to_object_bytes().to_vec())
            .collect();
        assert_eq!(pack.bytes().as_ref(), concatenated.as_slice());
        assert_eq!(pack.id(), PackId::of(&concatenated));
        for (chunk, at) in chunks.iter().zip(pack.chunks()) {
            assert_eq!(at.id, chunk.id());
            let Placement::Packed {
                pack: id,
                offset,
                len,
            } = at.placement
            else {
                panic!("a packed chunk has a pack placement: {at:?}");
            };
            assert_eq!(id, pack.id());
            let range = offset as usize..offset as usize + len as usize;
            let object = pack.bytes().slice(range);
            let read = EncodedChunk::from_object_bytes(chunk.id(), object).expect("verifies");
            assert_eq!(&read, chunk);
        }
    }
}
