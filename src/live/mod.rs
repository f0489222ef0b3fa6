//! The live pipeline: frames from a capture device, a recording or the phantom, analysed
//! as they arrive, with the risk drawn over the live image.
//!
//! - [`input`]: what the capture thread reads, and its loop with reconnection.
//! - [`queue`]: the bounded frame queue between capture and analysis.
//! - [`session`]: one exam at a time: layout, curve, arrival, peak, inference job,
//!   result and the overlay of every frame.
//! - [`peak`] and [`candidates`]: online peak confirmation and the stored frames it
//!   chooses from.
//! - [`worker`]: the inference thread.
//! - [`control`] and [`events`]: the JSON-lines protocol in and out.
//! - [`pipeline`]: the threads put together.

pub mod candidates;
pub mod control;
pub mod events;
pub mod input;
pub mod latency;
pub mod peak;
pub mod pipeline;
pub mod queue;
pub mod session;
pub mod spark;
pub mod worker;
