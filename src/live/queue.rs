//! The bounded queue between the capture thread and the analysis thread.
//!
//! Frames circulate: the producer takes a free frame, fills it and pushes it; the consumer
//! pops it, uses it and recycles it. At most [`QUEUE_CAPACITY`] frames wait in the queue,
//! so once every circulating frame has grown to the stream's size, nothing is allocated.
//!
//! When the queue is full, [`FullPolicy`] decides: a live source drops the oldest waiting
//! frame (capture never blocks), a file read as fast as possible waits for room (so no
//! frame of a recording is lost).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::frame::Frame;

/// Frames that may wait between capture and analysis.
pub const QUEUE_CAPACITY: usize = 4;

/// Frames in circulation at most: the waiting ones, one being filled, and two held by
/// the consumer (the frame being analysed and the one before it, kept for a redraw).
const POOL_CAPACITY: usize = QUEUE_CAPACITY + 3;

/// Notices a source sends besides frames, at most this many waiting.
const NOTICE_CAPACITY: usize = 8;

/// A frame with the instant its capture completed, for the latency figures.
#[derive(Debug)]
pub struct TimedFrame {
    pub frame: Frame,
    pub captured_at: Instant,
}

impl TimedFrame {
    fn empty() -> TimedFrame {
        TimedFrame {
            frame: Frame::empty(),
            captured_at: Instant::now(),
        }
    }
}

/// Policy of [`FrameQueue::push`] when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Recycle the oldest waiting frame and count it as dropped.
    DropOldest,
    /// Block until the consumer makes room.
    Wait,
}

/// A change of the source's state, delivered in order with the frames.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceNotice {
    /// The source delivers no frames: the device timed out or went away.
    NoSignal { reason: String },
    /// The device was opened again and frames flow.
    Reconnected,
    /// The source failed for good, for the reason given.
    Failed { reason: String },
}

/// Result of [`FrameQueue::pop`].
#[derive(Debug)]
pub enum Popped {
    Frame(TimedFrame),
    Notice(SourceNotice),
    /// Nothing arrived within the timeout.
    TimedOut,
    /// The producer closed the queue and every frame has been popped.
    Closed,
}

#[derive(Debug)]
struct State {
    /// Waiting frames and notices, each with its place in the order of pushes.
    waiting: heapless::Deque<(u64, TimedFrame), QUEUE_CAPACITY>,
    free: heapless::Vec<TimedFrame, POOL_CAPACITY>,
    notices: heapless::Deque<(u64, SourceNotice), NOTICE_CAPACITY>,
    pushes: u64,
    dropped: u64,
    closed: bool,
}

/// A fixed-capacity, recycling frame queue for one producer and one consumer.
#[derive(Debug)]
pub struct FrameQueue {
    state: Mutex<State>,
    changed: Condvar,
    policy: FullPolicy,
}

impl FrameQueue {
    pub fn new(policy: FullPolicy) -> FrameQueue {
        FrameQueue {
            state: Mutex::new(State {
                waiting: heapless::Deque::new(),
                free: heapless::Vec::new(),
                notices: heapless::Deque::new(),
                pushes: 0,
                dropped: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            policy,
        }
    }

    /// Takes a frame to fill: a recycled one, or a new empty one while the pool warms up.
    pub fn take_free(&self) -> TimedFrame {
        self.lock().free.pop().unwrap_or_else(TimedFrame::empty)
    }

    /// Queues a filled frame, applying the policy when the queue is full. Returns
    /// `false` when the consumer has closed the queue, so the producer should stop.
    pub fn push(&self, item: TimedFrame) -> bool {
        let mut state = self.lock();
        while state.waiting.is_full() && !state.closed {
            match self.policy {
                FullPolicy::DropOldest => {
                    if let Some((_, oldest)) = state.waiting.pop_front() {
                        state.dropped += 1;
                        let _ = state.free.push(oldest);
                    }
                }
                FullPolicy::Wait => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
        if state.closed {
            return false;
        }
        // The loop above made room, so this push cannot fail.
        state.pushes += 1;
        let place = state.pushes;
        let _ = state.waiting.push_back((place, item));
        drop(state);
        self.changed.notify_all();
        true
    }

    /// Sends a notice; the oldest waiting notice is dropped when too many wait.
    pub fn notify(&self, notice: SourceNotice) {
        let mut state = self.lock();
        if state.notices.is_full() {
            state.notices.pop_front();
        }
        state.pushes += 1;
        let place = state.pushes;
        let _ = state.notices.push_back((place, notice));
        drop(state);
        self.changed.notify_all();
    }

    /// Waits at most `timeout` for a notice or a frame, returning them in the order they
    /// were pushed.
    pub fn pop(&self, timeout: Duration) -> Popped {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let next_frame = state.waiting.front().map(|(place, _)| *place);
            let next_notice = state.notices.front().map(|(place, _)| *place);
            let notice_first = match (next_notice, next_frame) {
                (Some(notice), Some(frame)) => notice < frame,
                (Some(_), None) => true,
                _ => false,
            };
            if notice_first {
                if let Some((_, notice)) = state.notices.pop_front() {
                    return Popped::Notice(notice);
                }
            }
            if let Some((_, item)) = state.waiting.pop_front() {
                drop(state);
                self.changed.notify_all();
                return Popped::Frame(item);
            }
            if state.closed {
                return Popped::Closed;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Popped::TimedOut;
            }
            state = self
                .changed
                .wait_timeout(state, remaining)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Returns a used frame to the pool.
    pub fn recycle(&self, item: TimedFrame) {
        let _ = self.lock().free.push(item);
    }

    /// Ends the stream: the consumer drains what is queued, then gets [`Popped::Closed`];
    /// a producer blocked in [`FrameQueue::push`] returns `false`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Frames dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left the state consistent, since
        // every update above is a single push or pop.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with_index(queue: &FrameQueue, index: u64) -> TimedFrame {
        let mut item = queue.take_free();
        item.frame.index = index;
        item
    }

    fn popped_index(queue: &FrameQueue) -> Option<u64> {
        match queue.pop(Duration::from_millis(10)) {
            Popped::Frame(item) => Some(item.frame.index),
            _ => None,
        }
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let queue = FrameQueue::new(FullPolicy::DropOldest);
        for index in 0..6 {
            assert!(queue.push(frame_with_index(&queue, index)));
        }
        assert_eq!(queue.dropped(), 2);
        assert_eq!(popped_index(&queue), Some(2));
        assert_eq!(popped_index(&queue), Some(3));
    }

    #[test]
    fn notices_keep_their_order_with_frames() {
        let queue = FrameQueue::new(FullPolicy::DropOldest);
        queue.push(frame_with_index(&queue, 0));
        queue.notify(SourceNotice::Reconnected);
        queue.push(frame_with_index(&queue, 1));
        assert_eq!(popped_index(&queue), Some(0));
        assert!(matches!(
            queue.pop(Duration::ZERO),
            Popped::Notice(SourceNotice::Reconnected)
        ));
        assert_eq!(popped_index(&queue), Some(1));
    }

    #[test]
    fn closed_queue_drains_then_reports_closed() {
        let queue = FrameQueue::new(FullPolicy::Wait);
        queue.push(frame_with_index(&queue, 7));
        queue.close();
        assert_eq!(popped_index(&queue), Some(7));
        assert!(matches!(queue.pop(Duration::ZERO), Popped::Closed));
        assert!(!queue.push(frame_with_index(&queue, 8)));
    }

    #[test]
    fn empty_queue_times_out() {
        let queue = FrameQueue::new(FullPolicy::DropOldest);
        let started = Instant::now();
        assert!(matches!(
            queue.pop(Duration::from_millis(20)),
            Popped::TimedOut
        ));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn waiting_producer_resumes_when_consumer_pops() {
        let queue = std::sync::Arc::new(FrameQueue::new(FullPolicy::Wait));
        for index in 0..QUEUE_CAPACITY as u64 {
            queue.push(frame_with_index(&queue, index));
        }
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let item = frame_with_index(&queue, 99);
                queue.push(item)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(popped_index(&queue), Some(0));
        assert!(producer.join().unwrap());
        assert_eq!(queue.dropped(), 0);
        let rest: Vec<u64> = std::iter::from_fn(|| popped_index(&queue)).collect();
        assert_eq!(rest, vec![1, 2, 3, 99]);
    }

    #[test]
    fn recycled_frames_are_reused() {
        let queue = FrameQueue::new(FullPolicy::DropOldest);
        let mut item = queue.take_free();
        item.frame.data = Vec::with_capacity(1000);
        queue.recycle(item);
        assert_eq!(queue.take_free().frame.data.capacity(), 1000);
    }
}
