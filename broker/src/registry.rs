//! Client id → session, in shards.
//!
//! Connect, takeover and session end touch one client id, so they lock one
//! shard. Walks over every session (the keep-alive sweep every 250 ms,
//! shutdown, the session counts of a metrics scrape) lock one shard at a
//! time, so none of them holds up connects for long however many sessions
//! there are. A shard is a set of the handles themselves, looked up by
//! client id: one pointer per session, not a key and a value.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::session::SessionHandle;

/// Number of shards (a power of two).
const SHARDS: usize = 64;

/// A registered session, hashed and compared by its client id.
#[derive(Debug)]
struct Entry(Arc<SessionHandle>);

impl Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        &self.0.client_id
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it.
        self.0.client_id.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for Entry {}

/// The sessions by client id.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[Mutex<HashSet<Entry>>]>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// One shard, locked: what a connect or a session end does for its client
/// id is one step under this lock.
#[derive(Debug)]
pub struct Shard<'a>(MutexGuard<'a, HashSet<Entry>>);

impl Shard<'_> {
    pub fn get(&self, client_id: &str) -> Option<&Arc<SessionHandle>> {
        self.0.get(client_id).map(|e| &e.0)
    }

    /// Registers `handle` under its client id, replacing any other.
    pub fn insert(&mut self, handle: Arc<SessionHandle>) {
        self.0.replace(Entry(handle));
    }

    /// Unregisters `handle` if it is the one registered for its client id.
    pub fn remove_if_current(&mut self, handle: &Arc<SessionHandle>) {
        if self
            .get(&handle.client_id)
            .is_some_and(|h| Arc::ptr_eq(h, handle))
        {
            self.0.remove(&*handle.client_id);
        }
    }
}

impl Registry {
    /// Locks the shard of `client_id`.
    pub fn lock(&self, client_id: &str) -> Shard<'_> {
        // A fixed hash, independent of the sets' own random one; a client
        // that aims ids at one shard only makes that shard busier.
        let mut h = std::hash::DefaultHasher::new();
        client_id.hash(&mut h);
        Shard(self.shards[h.finish() as usize & (SHARDS - 1)].lock())
    }

    /// Calls `f` on every session, one shard locked at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<SessionHandle>)) {
        for shard in self.shards.iter() {
            for e in shard.lock().iter() {
                f(&e.0);
            }
        }
    }

    /// Number of sessions (a sum over the shards, each read in turn).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_replaced_and_removed_by_client_id() {
        let r = Registry::default();
        let ids: Vec<String> = (0..1000).map(|i| format!("client-{i}")).collect();
        for id in &ids {
            r.lock(id)
                .insert(SessionHandle::new(Arc::from(id.as_str())));
        }
        assert_eq!(r.len(), 1000);
        let mut seen = 0;
        r.for_each(|_| seen += 1);
        assert_eq!(seen, 1000);
        // The shards are used: no single one holds most sessions.
        let fullest = r.shards.iter().map(|s| s.lock().len()).max().unwrap_or(0);
        assert!(fullest < 100, "fullest shard has {fullest} of 1000");

        let old = Arc::clone(r.lock("client-7").get("client-7").expect("registered"));
        let new = SessionHandle::new(Arc::from("client-7"));
        r.lock("client-7").insert(Arc::clone(&new));
        assert!(Arc::ptr_eq(
            r.lock("client-7").get("client-7").expect("replaced"),
            &new
        ));
        // An old handle no longer unregisters its client id...
        r.lock("client-7").remove_if_current(&old);
        assert!(r.lock("client-7").get("client-7").is_some());
        // ...the current one does.
        r.lock("client-7").remove_if_current(&new);
        assert!(r.lock("client-7").get("client-7").is_none());
        assert_eq!(r.len(), 999);
        assert!(r.lock("nobody").get("nobody").is_none());
    }
}
