//! The process-wide class registry: qualified class names to small ids.
//!
//! Trackers index their per-class state by [`ClassId`], so the hot path never
//! hashes a name. Ids are dense, start at 0 and are never reused; two classes
//! with the same qualified name share one id (a class re-created by a
//! factory function is counted as one class, which is what an inventory
//! wants).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// A registered class. Cheap to copy; dense from 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u32);

impl ClassId {
    /// The id as an index into per-class tables.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Registers (once) and returns the id of a Rust type, named by
    /// [`std::any::type_name`].
    pub fn of<T: ?Sized + 'static>() -> ClassId {
        registry().id_of_type(TypeId::of::<T>(), std::any::type_name::<T>())
    }

    /// Registers `name` if needed and returns its id.
    pub fn named(name: &str) -> ClassId {
        registry().register(name)
    }

    /// The qualified name this id was registered with.
    pub fn name(self) -> Arc<str> {
        registry()
            .name(self)
            .unwrap_or_else(|| Arc::from("<unknown>"))
    }
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<Arc<str>, ClassId>,
    names: Vec<Arc<str>>,
    by_type: HashMap<TypeId, ClassId>,
}

/// Maps qualified class names to dense [`ClassId`]s.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

/// The registry shared by everything in this process.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Returns the id of `name`, registering it first if it is new.
    pub fn register(&self, name: &str) -> ClassId {
        if let Some(id) = self.read().by_name.get(name) {
            return *id;
        }
        let mut inner = self.write();
        if let Some(id) = inner.by_name.get(name) {
            return *id;
        }
        let id = ClassId(u32::try_from(inner.names.len()).expect("fewer than 2^32 classes"));
        let name: Arc<str> = Arc::from(name);
        inner.names.push(name.clone());
        inner.by_name.insert(name, id);
        id
    }

    fn id_of_type(&self, ty: TypeId, name: &str) -> ClassId {
        if let Some(id) = self.read().by_type.get(&ty) {
            return *id;
        }
        let id = self.register(name);
        self.write().by_type.insert(ty, id);
        id
    }

    /// The name registered for `id`.
    pub fn name(&self, id: ClassId) -> Option<Arc<str>> {
        self.read().names.get(id.index()).cloned()
    }

    /// How many classes are registered.
    pub fn len(&self) -> usize {
        self.read().names.len()
    }

    /// Whether no class is registered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while the lock is held cannot leave the maps inconsistent (each
    // write is one push plus one insert of the same id), so a poisoned lock
    // is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_id() {
        let r = Registry::default();
        let a = r.register("m.A");
        let b = r.register("m.B");
        assert_ne!(a, b);
        assert_eq!(r.register("m.A"), a);
        assert_eq!(&*r.name(b).unwrap(), "m.B");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn rust_types_get_their_type_name() {
        struct Local;
        let id = ClassId::of::<Local>();
        assert_eq!(ClassId::of::<Local>(), id);
        assert!(id.name().ends_with("Local"));
    }
}
