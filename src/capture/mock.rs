//! A scripted [`CaptureDevice`] for tests: no hardware, no real waiting.
//!
//! The mock plays a list of [`MockEvent`]s. Its clock is simulated: a frame advances it
//! by the frame interval, and a poll that finds nothing advances it by the whole timeout,
//! so tests of timeouts take no real time. It counts polls, dequeues and queues, and
//! checks that the caller gives each buffer back before the driver would run out.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::device::{BufferInfo, CaptureDevice, Readiness};
use super::format::BufferFormat;
use super::CaptureError;

/// One step of a mock device's script.
#[derive(Clone, Debug)]
pub enum MockEvent {
    /// A filled buffer: the whole mapping, and the metadata the driver reports.
    Frame {
        /// The mapped bytes; `bytesused` of them are payload and the rest is whatever
        /// the buffer held before.
        mapping: Vec<u8>,
        bytesused: u32,
        sequence: u32,
        timestamp: Duration,
        flags: u32,
    },
    /// The device is unplugged: poll reports an error and dequeue fails with `ENODEV`.
    Disconnect,
    /// `poll` reports the device readable once but no buffer can be dequeued.
    SpuriousWakeup,
}

impl MockEvent {
    /// Makes a frame whose mapping is exactly its payload, with a monotonic timestamp.
    pub fn frame(payload: &[u8], sequence: u32, timestamp: Duration) -> MockEvent {
        MockEvent::Frame {
            mapping: payload.to_vec(),
            bytesused: payload.len() as u32,
            sequence,
            timestamp,
            flags: super::device::BUF_FLAG_TIMESTAMP_MONOTONIC,
        }
    }
}

/// Counts of what the caller did, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MockCounters {
    pub polls: u64,
    pub dequeues: u64,
    pub queues: u64,
    pub reopens: u64,
}

/// A capture device that plays scripts of events; see the module documentation.
#[derive(Debug)]
pub struct MockDevice {
    path: PathBuf,
    format: BufferFormat,
    frame_rate: Option<f64>,
    frame_interval: Duration,
    /// The script now playing; when it runs out the device never becomes ready again.
    events: VecDeque<MockEvent>,
    /// Scripts for the device after each successful [`CaptureDevice::reopen`].
    later_scripts: VecDeque<Vec<MockEvent>>,
    /// The mapping of each buffer slot, and whether the caller has it dequeued.
    slots: Vec<Slot>,
    next_slot: usize,
    disconnected: bool,
    clock: Duration,
    counters: MockCounters,
}

#[derive(Debug, Default)]
struct Slot {
    mapping: Vec<u8>,
    held: bool,
}

impl MockDevice {
    /// Creates a device with `buffers` buffer slots that plays `events` in `format` at 30
    /// frames per second.
    pub fn new(format: BufferFormat, buffers: usize, events: Vec<MockEvent>) -> MockDevice {
        MockDevice {
            path: PathBuf::from("/dev/video-mock"),
            format,
            frame_rate: Some(30.0),
            frame_interval: Duration::from_micros(33_333),
            events: events.into(),
            later_scripts: VecDeque::new(),
            slots: (0..buffers.max(1)).map(|_| Slot::default()).collect(),
            next_slot: 0,
            disconnected: false,
            clock: Duration::from_secs(1000),
            counters: MockCounters::default(),
        }
    }

    /// Adds the script the device plays after its next successful reopen. Without one, a
    /// reopen fails as if the device were still unplugged.
    pub fn then_after_reopen(mut self, events: Vec<MockEvent>) -> MockDevice {
        self.later_scripts.push_back(events);
        self
    }

    pub fn counters(&self) -> MockCounters {
        self.counters
    }

    /// Returns the simulated time on the device's clock.
    pub fn clock(&self) -> Duration {
        self.clock
    }

    fn free_slots(&self) -> usize {
        self.slots.iter().filter(|slot| !slot.held).count()
    }

    fn disconnected_error(&self) -> CaptureError {
        CaptureError::Disconnected {
            device: self.path.clone(),
            reason: "no such device (ENODEV)".into(),
        }
    }
}

impl CaptureDevice for MockDevice {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> &BufferFormat {
        &self.format
    }

    fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    fn poll(&mut self, timeout: Duration) -> Result<Readiness, CaptureError> {
        self.counters.polls += 1;
        if self.disconnected {
            // A real poll returns POLLERR at once on a removed device.
            return Ok(Readiness::Ready);
        }
        // A driver with every buffer held by the caller has nothing to fill.
        let ready = self.free_slots() > 0 && !self.events.is_empty();
        if !ready {
            self.clock += timeout;
            return Ok(Readiness::TimedOut);
        }
        Ok(Readiness::Ready)
    }

    fn dequeue(&mut self) -> Result<Option<BufferInfo>, CaptureError> {
        self.counters.dequeues += 1;
        if self.disconnected {
            return Err(self.disconnected_error());
        }
        if self.free_slots() == 0 {
            return Ok(None);
        }
        let Some(event) = self.events.pop_front() else {
            return Ok(None);
        };
        match event {
            MockEvent::Disconnect => {
                self.disconnected = true;
                Err(self.disconnected_error())
            }
            MockEvent::SpuriousWakeup => Ok(None),
            MockEvent::Frame {
                mapping,
                bytesused,
                sequence,
                timestamp,
                flags,
            } => {
                while self.slots[self.next_slot].held {
                    self.next_slot = (self.next_slot + 1) % self.slots.len();
                }
                let index = self.next_slot;
                self.next_slot = (self.next_slot + 1) % self.slots.len();
                self.slots[index] = Slot {
                    mapping,
                    held: true,
                };
                self.clock += self.frame_interval;
                Ok(Some(BufferInfo {
                    index: index as u32,
                    bytesused,
                    sequence,
                    timestamp,
                    flags,
                    dequeued_at: self.clock,
                }))
            }
        }
    }

    fn buffer(&self, index: u32) -> Result<&[u8], CaptureError> {
        match self.slots.get(index as usize) {
            Some(slot) if slot.held => Ok(&slot.mapping),
            _ => Err(CaptureError::Parameter(format!(
                "buffer {index} is not dequeued on the mock device"
            ))),
        }
    }

    fn queue(&mut self, index: u32) -> Result<(), CaptureError> {
        self.counters.queues += 1;
        match self.slots.get_mut(index as usize) {
            Some(slot) if slot.held => {
                slot.held = false;
                Ok(())
            }
            _ => Err(CaptureError::Parameter(format!(
                "buffer {index} is queued twice or does not exist on the mock device"
            ))),
        }
    }

    fn now(&self) -> Duration {
        self.clock
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.counters.reopens += 1;
        let Some(events) = self.later_scripts.pop_front() else {
            return Err(self.disconnected_error());
        };
        self.events = events.into();
        self.disconnected = false;
        for slot in &mut self.slots {
            slot.held = false;
        }
        Ok(())
    }
}
