//! Numbered event streams, so nothing pushed is silently lost across a
//! reconnect.
//!
//! Each recipient (a rep, or a session's customer) has one outbox. Every
//! pushed event gets the next sequence number and is kept in a ring of the
//! most recent ones. A client that reconnects says which stream it was
//! reading and the last number it saw: if everything after that is still in
//! the ring it gets exactly those events again; otherwise (too old, or the
//! stream is from before a restart) it is told to take a fresh snapshot.
use std::collections::VecDeque;
use std::sync::Arc;

use super::keys::random_id;

#[derive(Debug)]
pub struct Outbox<E> {
    /// Shared with every frame sent on the stream, which would otherwise
    /// each carry a copy: a join alerts ten reps, one frame each.
    stream: Arc<str>,
    next_seq: u64,
    ring: VecDeque<(u64, E)>,
    capacity: usize,
    /// False until some client has been given the stream's id: before that
    /// nobody can ask for an event again, so events are numbered, not kept.
    keeping: bool,
}

#[derive(Debug, PartialEq)]
pub enum Resume<E> {
    /// Everything after the client's last number, in order (maybe none).
    Replay(Vec<(u64, E)>),
    /// The gap cannot be filled: send a snapshot.
    Snapshot,
}

impl<E> Resume<E> {
    /// The same answer with every replayed event converted.
    pub fn map<F>(self, mut f: impl FnMut(E) -> F) -> Resume<F> {
        match self {
            Resume::Replay(events) => {
                Resume::Replay(events.into_iter().map(|(seq, e)| (seq, f(e))).collect())
            }
            Resume::Snapshot => Resume::Snapshot,
        }
    }
}

impl<E: Clone> Outbox<E> {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            stream: random_id().into(),
            next_seq: 1,
            // Allocated on the first push, not here: most customer streams
            // hold a handful of events, and an idle waiting session should
            // not carry room for 64 (each `Event` is a few hundred bytes).
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            keeping: true,
        }
    }

    /// An outbox that keeps nothing until [`Outbox::open`]: for a rep, whose
    /// stream only goes out when a console attaches. A rep who is not logged
    /// in would otherwise hold a copy of every alert of their teams' queues
    /// that no console could ever replay.
    pub fn unread(capacity: usize) -> Self {
        Outbox {
            keeping: false,
            ..Outbox::new(capacity)
        }
    }

    /// A client is being given this stream's id (and its last number): keep
    /// what is pushed from now on.
    pub fn open(&mut self) {
        self.keeping = true;
    }

    /// Whether a client has been given the stream (see [`Outbox::open`]).
    pub fn is_open(&self) -> bool {
        self.keeping
    }

    /// The stream's id: changes on every restart of the server.
    pub fn stream(&self) -> &Arc<str> {
        &self.stream
    }

    /// The number of the last event pushed (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Numbers and keeps an event; returns its number.
    pub fn push(&mut self, event: E) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.keeping {
            return seq;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back((seq, event));
        seq
    }

    /// What a client that last saw `after` on `stream` has missed.
    pub fn resume(&self, stream: &str, after: u64) -> Resume<E> {
        if stream != &*self.stream || after > self.last_seq() {
            return Resume::Snapshot;
        }
        let oldest_kept = self.ring.front().map(|(s, _)| *s).unwrap_or(self.next_seq);
        if after + 1 < oldest_kept {
            return Resume::Snapshot;
        }
        Resume::Replay(
            self.ring
                .iter()
                .filter(|(s, _)| *s > after)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_what_was_missed_or_asks_for_a_snapshot() {
        let mut o = Outbox::new(3);
        for e in ["a", "b", "c", "d"] {
            o.push(e);
        }
        let s = o.stream().to_string();
        assert_eq!(o.resume(&s, 2), Resume::Replay(vec![(3, "c"), (4, "d")]));
        assert_eq!(o.resume(&s, 4), Resume::Replay(vec![]));
        assert_eq!(
            o.resume(&s, 1),
            Resume::Replay(vec![(2, "b"), (3, "c"), (4, "d")])
        );
        assert_eq!(
            o.resume(&s, 0),
            Resume::Snapshot,
            "event 1 fell out of the ring"
        );
        assert_eq!(o.resume("old-stream", 4), Resume::Snapshot);
        assert_eq!(
            o.resume(&s, 9),
            Resume::Snapshot,
            "a number from the future"
        );
    }

    #[test]
    fn an_unread_stream_numbers_events_but_keeps_them_only_once_opened() {
        let mut o = Outbox::unread(8);
        assert_eq!(o.push("a"), 1);
        assert_eq!(o.push("b"), 2);
        assert!(o.ring.is_empty(), "nobody could ask for these again");
        o.open();
        let (s, seq) = (o.stream().to_string(), o.last_seq());
        assert_eq!(seq, 2, "the client starts after what it never saw");
        o.push("c");
        assert_eq!(o.resume(&s, seq), Resume::Replay(vec![(3, "c")]));
        assert_eq!(o.resume(&s, 1), Resume::Snapshot, "before it was opened");
    }

    /// A rep's ring holds events shared with other reps; a replay hands
    /// out owned copies, in order, keeping the numbers.
    #[test]
    fn a_replay_of_shared_events_maps_to_owned_ones_in_order() {
        let mut o = Outbox::new(4);
        let s = o.stream().to_string();
        for e in ["a", "b", "c"] {
            o.push(Arc::new(e.to_string()));
        }
        let owned = o.resume(&s, 1).map(Arc::unwrap_or_clone);
        assert_eq!(
            owned,
            Resume::Replay(vec![(2, "b".to_string()), (3, "c".to_string())])
        );
        assert_eq!(o.resume("gone", 1).map(|e| e.len()), Resume::Snapshot);
    }
}
