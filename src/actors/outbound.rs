//! The bounded queue of frames from the actors to one connection.
//!
//! Actors push without waiting (`try_send`): a full queue means the client
//! is not reading, and the connection is closed rather than buffered
//! without limit. The connection's loop awaits `recv`. When every sender is
//! gone (the actor let go of the connection) `recv` ends with `None`; when
//! the receiver is gone (the connection closed) `try_send` says `Closed`.
//!
//! Why not tokio's `mpsc::channel`: it is built for many busy senders, with
//! each side's state padded to its own cache line and a first block of 32
//! slots allocated up front, about 0.8 KiB per channel. Every connection
//! has one, and most of them (waiting customers) see a frame or two a
//! minute. This queue is a mutex around a `VecDeque`, which allocates on
//! the first frame and gives its room back once a burst has drained, about
//! 0.1 KiB (docs/performance.md, change 28). The actors' thread and the
//! connection's thread take the lock once per frame each, uncontended.
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Room a drained queue keeps: more than a waiting customer ever holds,
/// much less than a burst to a busy rep.
const KEEP_WHEN_EMPTY: usize = 16;

/// Why `try_send` did not queue the frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds its capacity: the client is too slow.
    Full,
    /// The receiver (the connection) is gone.
    Closed,
}

struct State<T> {
    frames: VecDeque<T>,
    /// The receiver's task, while it waits for a frame.
    waker: Option<Waker>,
    senders: usize,
    receiver_gone: bool,
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    /// The state, whatever a panicking holder left: every update below is
    /// complete before anything that can panic.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue holding at most `capacity` frames.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity,
        state: Mutex::new(State {
            frames: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver_gone: false,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queues `frame` without waiting.
    pub fn try_send(&self, frame: T) -> Result<(), SendError> {
        let waker = {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(SendError::Closed);
            }
            if state.frames.len() >= self.shared.capacity {
                return Err(SendError::Full);
            }
            state.frames.push_back(frame);
            state.waker.take()
        };
        // Woken outside the lock, so the receiver does not wake only to
        // wait for it.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            match state.senders {
                0 => state.waker.take(),
                _ => None,
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Receiver<T> {
    /// The next frame, or `None` once the queue is empty and every sender
    /// is gone.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(frame) = state.frames.pop_front() {
            if state.frames.is_empty() && state.frames.capacity() > KEEP_WHEN_EMPTY {
                state.frames.shrink_to(KEEP_WHEN_EMPTY);
            }
            return Poll::Ready(Some(frame));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        // Registered under the lock: a sender that queues after we looked
        // finds this waker and wakes us.
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let frames = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.waker = None;
            std::mem::take(&mut state.frames)
        };
        // Frames are dropped outside the lock: dropping one may free a
        // large event.
        drop(frames);
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_full_queue_refuses_more() {
        let (tx, mut rx) = channel(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(SendError::Full));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(4));
    }

    #[tokio::test]
    async fn the_receiver_ends_once_every_sender_is_gone_and_the_queue_drained() {
        let (tx, mut rx) = channel(8);
        let other = tx.clone();
        tx.try_send("a").expect("queued");
        drop(tx);
        other.try_send("b").expect("queued");
        drop(other);
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(rx.recv().await, Some("b"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_sender_is_told_when_the_receiver_is_gone() {
        let (tx, rx) = channel(8);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_frame_from_another_thread() {
        let (tx, mut rx) = channel(8);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.try_send(7).expect("queued");
            // Kept until the frame is read: `None` must not win the race.
            std::thread::sleep(Duration::from_millis(200));
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got, Ok(Some(7)));
        sender.join().expect("the sender thread");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_when_the_last_sender_goes() {
        let (tx, mut rx) = channel::<u8>(8);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(tx);
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got, Ok(None));
        sender.join().expect("the sender thread");
    }

    #[tokio::test]
    async fn a_drained_burst_gives_its_room_back() {
        let (tx, mut rx) = channel(1024);
        for i in 0..1000 {
            tx.try_send(i).expect("queued");
        }
        for _ in 0..1000 {
            rx.recv().await.expect("a frame");
        }
        assert!(rx.shared.lock().frames.capacity() <= KEEP_WHEN_EMPTY);
    }

    /// Many frames from another thread while the receiver keeps waiting:
    /// none lost, none twice, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_lost_between_threads() {
        let (tx, mut rx) = channel(64);
        let sender = std::thread::spawn(move || {
            let mut i = 0u32;
            while i < 100_000 {
                match tx.try_send(i) {
                    Ok(()) => i += 1,
                    Err(SendError::Full) => std::thread::yield_now(),
                    Err(SendError::Closed) => panic!("the receiver went away"),
                }
            }
        });
        for want in 0..100_000u32 {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert_eq!(got, Ok(Some(want)));
        }
        assert_eq!(rx.recv().await, None);
        sender.join().expect("the sender thread");
    }
}
