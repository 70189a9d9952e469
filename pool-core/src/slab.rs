//! A minimal slab: values in a `Vec` with a free list, so inserting and removing reuse memory
//! and allocate nothing once it has grown to its peak size.

#[derive(Debug)]
enum Entry<T> {
    Occupied(T),
    Vacant(Option<usize>),
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Option<usize>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: None,
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free {
            Some(key) => {
                let Entry::Vacant(next) = self.entries[key] else {
                    unreachable!("the free list points at an occupied entry")
                };
                self.free = next;
                self.entries[key] = Entry::Occupied(value);
                key
            }
            None => {
                self.entries.push(Entry::Occupied(value));
                self.entries.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        match std::mem::replace(self.entries.get_mut(key)?, Entry::Vacant(self.free)) {
            Entry::Occupied(value) => {
                self.free = Some(key);
                self.len -= 1;
                Some(value)
            }
            vacant => {
                // Not occupied: put the free-list link back as it was.
                self.entries[key] = vacant;
                None
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().filter_map(|e| match e {
            Entry::Occupied(v) => Some(v),
            Entry::Vacant(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn keys_are_reused_and_never_alias() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "a vacant key removes nothing");
        let c = slab.insert("c");
        assert_eq!(c, a, "the freed key is reused");
        assert_eq!(slab.len(), 2);
        for v in slab.iter_mut() {
            if *v == "c" {
                *v = "c2";
            }
        }
        assert_eq!(slab.iter_mut().map(|v| *v).collect::<Vec<_>>(), ["c2", "b"]);
        assert_eq!(slab.remove(b), Some("b"));
    }
}
