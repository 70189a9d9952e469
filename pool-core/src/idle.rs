//! The idle list: the pool's idle connections in return order, the newest one kept inline.
//!
//! A return followed by a checkout (the common case while the pool is not exhausted) then
//! moves the connection through the list's own fields, which sit in the state lock's cache
//! line (see `State`'s layout), instead of through a slot of a heap buffer that every core
//! writes: one cache line less between cores for each checkout and each return.

use std::collections::VecDeque;

use crate::conn::Conn;

/// Idle connections, longest idle first: `older`, then `newest`.
///
/// `newest` may be empty while `older` is not (after the newest was taken); a push then fills
/// it again, and the order holds, since a pushed connection is always the newest.
#[repr(C)]
pub(crate) struct Idle<C> {
    newest: Option<Conn<C>>,
    older: VecDeque<Conn<C>>,
}

impl<C> Idle<C> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Idle {
            newest: None,
            older: VecDeque::with_capacity(capacity),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.older.len() + usize::from(self.newest.is_some())
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.newest.is_none() && self.older.is_empty()
    }

    /// A connection becomes idle: it is the newest.
    #[inline]
    pub(crate) fn push_newest(&mut self, conn: Conn<C>) {
        if let Some(was) = self.newest.replace(conn) {
            self.older.push_back(was);
        }
    }

    /// The one idle for the shortest time (LIFO).
    #[inline]
    pub(crate) fn pop_newest(&mut self) -> Option<Conn<C>> {
        self.newest.take().or_else(|| self.older.pop_back())
    }

    /// The one idle for the longest time (FIFO, idle shrink, over the ceiling).
    #[inline]
    pub(crate) fn pop_oldest(&mut self) -> Option<Conn<C>> {
        self.older.pop_front().or_else(|| self.newest.take())
    }

    /// The one idle for the longest time, left in place.
    pub(crate) fn oldest(&self) -> Option<&Conn<C>> {
        self.older.front().or(self.newest.as_ref())
    }

    /// Every idle connection, longest idle first; the list is left empty.
    pub(crate) fn take_all(&mut self) -> VecDeque<Conn<C>> {
        let mut all = std::mem::take(&mut self.older);
        all.extend(self.newest.take());
        all
    }

    /// The list as one deque, longest idle first, for the housekeeper's and the sweep's
    /// rarer edits (insert by stamp, remove from the middle); the newest joins the deque.
    pub(crate) fn as_deque(&mut self) -> &mut VecDeque<Conn<C>> {
        if let Some(conn) = self.newest.take() {
            self.older.push_back(conn);
        }
        &mut self.older
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn<C>> {
        self.older.iter().chain(self.newest.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;

    fn conn(n: u32) -> Conn<u32> {
        Conn::for_tests(n, Instant::now())
    }

    fn order(idle: &Idle<u32>) -> Vec<u32> {
        idle.iter().map(|c| c.raw).collect()
    }

    #[test]
    fn keeps_return_order_through_the_inline_slot() {
        let mut idle = Idle::with_capacity(4);
        assert!(idle.is_empty());
        for n in 1..=3 {
            idle.push_newest(conn(n));
        }
        assert_eq!(order(&idle), [1, 2, 3]);
        assert_eq!(idle.len(), 3);
        // The newest leaves the inline slot empty; the next push fills it, still last.
        assert_eq!(idle.pop_newest().map(|c| c.raw), Some(3));
        assert_eq!(order(&idle), [1, 2]);
        idle.push_newest(conn(4));
        assert_eq!(order(&idle), [1, 2, 4]);
        assert_eq!(idle.oldest().map(|c| c.raw), Some(1));
        assert_eq!(idle.pop_oldest().map(|c| c.raw), Some(1));
        // With the inline slot empty, the newest comes from the deque.
        assert_eq!(idle.pop_newest().map(|c| c.raw), Some(4));
        assert_eq!(idle.pop_newest().map(|c| c.raw), Some(2));
        assert_eq!(idle.pop_newest().map(|c| c.raw), None);
        assert_eq!(idle.pop_oldest().map(|c| c.raw), None);
        assert_eq!(idle.len(), 0);
    }

    #[test]
    fn the_oldest_can_be_the_inline_one() {
        let mut idle = Idle::with_capacity(1);
        idle.push_newest(conn(7));
        assert_eq!(idle.oldest().map(|c| c.raw), Some(7));
        assert_eq!(idle.pop_oldest().map(|c| c.raw), Some(7));
        assert!(idle.is_empty());
    }

    #[test]
    fn the_deque_view_and_take_all_hold_everything_in_order() {
        let mut idle = Idle::with_capacity(4);
        for n in 1..=3 {
            idle.push_newest(conn(n));
        }
        let deque = idle.as_deque();
        assert_eq!(deque.iter().map(|c| c.raw).collect::<Vec<_>>(), [1, 2, 3]);
        deque.remove(1);
        assert_eq!(order(&idle), [1, 3]);
        idle.push_newest(conn(5));
        let all = idle.take_all();
        assert_eq!(all.iter().map(|c| c.raw).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(idle.is_empty());
    }
}
