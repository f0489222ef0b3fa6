//! Proves that the live per-frame path allocates nothing once it has warmed up.
//!
//! A counting global allocator counts the allocations of each thread. The test drives
//! the analysis thread's per-frame work on a phantom exam: the frame queue, the session
//! (curve, peak detection, candidate store, overlay), the latency histogram and the
//! framebuffer packer, with the real inference worker on its own thread. Frames that
//! change the exam's state (layout found, arrival, peak, result) may allocate, and the
//! session reports them; every other frame after the warm-up must allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ceus_edge::display::fbdev::{Channel, FbGeometry, Packer};
use ceus_edge::extractor::{Extractor, LoadOptions};
use ceus_edge::frame::Frame;
use ceus_edge::geometry::Rect;
use ceus_edge::live::events::{Event, EventSink};
use ceus_edge::live::latency::LatencyHistogram;
use ceus_edge::live::queue::{FrameQueue, FullPolicy, Popped};
use ceus_edge::live::session::{ExamSession, SessionConfig};
use ceus_edge::live::worker::InferenceWorker;
use ceus_edge::phantom::source::PhantomSource;
use ceus_edge::phantom::{Phantom, PhantomConfig};
use ceus_edge::signature::Signature;
use ceus_edge::source::FrameSource;
use ceus_edge::tic::pipeline::RoiChoice;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The system allocator, counting calls per thread.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counter is a const-initialised thread local, so counting itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System` underneath.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts events by kind, without allocating.
#[derive(Default)]
struct Kinds {
    arrival: u32,
    peak: u32,
    result: u32,
}

impl EventSink for Kinds {
    fn emit(&mut self, event: &Event) {
        match event {
            Event::BolusArrival { .. } => self.arrival += 1,
            Event::Peak { .. } => self.peak += 1,
            Event::Result(_) => self.result += 1,
            _ => {}
        }
    }
}

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn framebuffer_packer() -> Packer {
    let geometry = FbGeometry {
        width: 640,
        height: 480,
        bits_per_pixel: 32,
        line_length: 640 * 4,
        red: Channel {
            offset: 16,
            length: 8,
        },
        green: Channel {
            offset: 8,
            length: 8,
        },
        blue: Channel {
            offset: 0,
            length: 8,
        },
    };
    Packer::new(geometry).unwrap()
}

#[test]
fn steady_frames_allocate_nothing() {
    check_steady_frames(RoiChoice::Rect);
}

#[test]
fn steady_frames_allocate_nothing_with_auto_roi() {
    check_steady_frames(|_| RoiChoice::Auto);
}

/// Runs a phantom exam through the session with the ROI `choose` picks given the
/// lesion, and checks that no frame after the warm-up allocates unless it changes the
/// exam's state.
fn check_steady_frames(choose: impl Fn(Rect) -> RoiChoice) {
    let config = PhantomConfig {
        seed: 3,
        frames: 450,
        fps: 15.0,
        width: 320,
        height: 240,
        ..PhantomConfig::default()
    };
    let phantom = Phantom::new(config).unwrap();
    let roi = phantom.truth().lesion_roi;
    let mut source = PhantomSource::new(phantom);
    let mut frames = Vec::new();
    let mut frame = Frame::empty();
    while source.read_frame(&mut frame).unwrap() {
        frames.push(frame.clone());
    }

    let extractor = Extractor::load(
        &models().join("densenet201-int8.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let signature = Signature::load(&models().join("demo-signature.bin")).unwrap();
    let mut worker = InferenceWorker::spawn(extractor, signature).unwrap();
    let session_config = SessionConfig {
        roi: choose(roi),
        frame_rate: Some(15.0),
        demo: true,
        ..SessionConfig::default()
    };
    let warm_up = u64::from(session_config.detect_frames) + 5;
    let mut session = ExamSession::new(session_config, BTreeMap::new());
    let queue = FrameQueue::new(FullPolicy::DropOldest);
    let mut latency = LatencyHistogram::default();
    let mut packer = framebuffer_packer();
    let mut screen = vec![0u8; 640 * 480 * 4];
    let mut overlay = Frame::empty();
    let mut kinds = Kinds::default();

    let mut steady = 0u32;
    let mut changed_frames = 0u32;
    let mut violations = Vec::new();
    for source_frame in &frames {
        let before = allocations();

        let mut item = queue.take_free();
        item.frame
            .reset(source_frame.width, source_frame.height, source_frame.format);
        item.frame.data.copy_from_slice(&source_frame.data);
        item.frame.index = source_frame.index;
        item.frame.time_s = source_frame.time_s;
        item.captured_at = Instant::now();
        queue.push(item);
        let Popped::Frame(item) = queue.pop(Duration::from_millis(100)) else {
            panic!("the queue lost frame {}", source_frame.index);
        };
        let changed = session.process_frame(&item.frame, &mut overlay, &mut worker, &mut kinds);
        packer.draw(&overlay, &mut screen).unwrap();
        latency.record(item.captured_at.elapsed());
        queue.recycle(item);

        let allocated = allocations() - before;
        if changed {
            changed_frames += 1;
        } else if source_frame.index >= warm_up {
            steady += 1;
            if allocated > 0 {
                violations.push((source_frame.index, allocated));
            }
        }
    }
    session.finish(&mut worker, &mut kinds, Duration::from_secs(120));

    assert_eq!(
        (kinds.arrival, kinds.peak, kinds.result),
        (1, 1, 1),
        "the exam did not pass through every phase"
    );
    assert!(steady >= 400, "only {steady} steady frames were checked");
    assert!(
        changed_frames <= 10,
        "{changed_frames} frames changed the exam's state"
    );
    assert!(
        violations.is_empty(),
        "allocating frames (index, count): {violations:?}"
    );
}
