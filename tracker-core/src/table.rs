//! [`ClassTable`]: per-class state indexed by [`ClassId`], growing without
//! moving, so readers and writers never take a lock.

use std::sync::OnceLock;

use crate::ClassId;

const CHUNK: usize = 256;
const CHUNKS: usize = 4096;

/// A table of `T` per class, allocated lazily in chunks of 256 classes.
/// Holds up to [`ClassTable::CAPACITY`] classes; ids beyond it are ignored
/// by [`ClassTable::get_or_init`] returning `None`.
pub struct ClassTable<T> {
    /// Fixed lengths, so an index reduced modulo them needs no bounds check.
    chunks: Box<[OnceLock<Box<[T; CHUNK]>>; CHUNKS]>,
}

impl<T: Default> Default for ClassTable<T> {
    fn default() -> Self {
        let chunks: Box<[OnceLock<Box<[T; CHUNK]>>]> =
            (0..CHUNKS).map(|_| OnceLock::new()).collect();
        ClassTable {
            chunks: chunks
                .try_into()
                .unwrap_or_else(|_| unreachable!("CHUNKS chunks")),
        }
    }
}

impl<T: Default> ClassTable<T> {
    /// The most classes a table holds.
    pub const CAPACITY: usize = CHUNK * CHUNKS;

    /// The entry of `id`, allocating its chunk on first use (always
    /// inlined: it is on every tracked object's creation and destruction).
    #[inline(always)]
    pub fn get_or_init(&self, id: ClassId) -> Option<&T> {
        let (chunk, slot) = (id.index() / CHUNK, id.index() % CHUNK);
        let chunk = self.chunks.get(chunk)?;
        let entries = match chunk.get() {
            Some(entries) => entries,
            None => Self::init_chunk(chunk),
        };
        Some(&entries[slot])
    }

    #[cold]
    #[inline(never)]
    fn init_chunk(chunk: &OnceLock<Box<[T; CHUNK]>>) -> &[T; CHUNK] {
        chunk.get_or_init(|| Box::new(std::array::from_fn(|_| T::default())))
    }

    /// The entry of `id` if its chunk exists.
    pub fn get(&self, id: ClassId) -> Option<&T> {
        let (chunk, slot) = (id.index() / CHUNK, id.index() % CHUNK);
        Some(&self.chunks.get(chunk)?.get()?[slot])
    }

    /// Every allocated entry with its id, in id order, up to `limit` ids.
    pub fn iter(&self, limit: usize) -> impl Iterator<Item = (ClassId, &T)> {
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(c, chunk)| chunk.get().map(|entries| (c, entries)))
            .flat_map(|(c, entries)| {
                entries
                    .iter()
                    .enumerate()
                    .map(move |(s, e)| (ClassId((c * CHUNK + s) as u32), e))
            })
            .take_while(move |(id, _)| id.index() < limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn grows_lazily() {
        let t: ClassTable<AtomicU64> = ClassTable::default();
        assert!(t.get(ClassId(700)).is_none());
        t.get_or_init(ClassId(700))
            .unwrap()
            .store(7, Ordering::Relaxed);
        assert_eq!(t.get(ClassId(700)).unwrap().load(Ordering::Relaxed), 7);
        assert!(t.get_or_init(ClassId(u32::MAX)).is_none());
        let seen: Vec<_> = t.iter(usize::MAX).map(|(id, _)| id.0).collect();
        assert_eq!(seen.len(), 256);
        assert_eq!(seen[0], 512);
    }
}
