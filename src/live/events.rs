//! The JSON-lines events of a live session: one object per line, whose `event` field
//! names its kind.
//!
//! Every event of an exam carries `exam`, the exam's number in this session (from 1), so
//! a reader can drop whatever belongs to a previous patient.

use std::io::Write;

use serde::Serialize;

use super::latency::LatencySummary;
use crate::analysis::Risk;

/// Version of the event schema; raised when a field changes meaning or is removed.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One event of a live session.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The session started: the source, its size and the schema version.
    Session {
        schema_version: u32,
        source: String,
        width: u32,
        height: u32,
        fps: Option<f64>,
        demo: bool,
    },
    /// An exam started (the first one, after `new_exam`, or after `reset`).
    Exam {
        exam: u32,
        state: &'static str,
    },
    /// The views were found and the curve is measured from here on.
    Layout {
        exam: u32,
        kind: String,
        contrast: [u32; 4],
        bmode: Option<[u32; 4]>,
        roi: [u32; 4],
        roi_source: &'static str,
    },
    BolusArrival {
        exam: u32,
        frame: u64,
        time_s: f64,
    },
    /// The peak frame chosen once the peak was confirmed.
    Peak {
        exam: u32,
        frame: u64,
        time_s: f64,
        /// Time of the fitted curve's maximum, when a bolus model was fitted.
        fitted_peak_s: Option<f64>,
        /// `drop` or `timeout`: what confirmed the peak.
        confirmed_by: &'static str,
    },
    Result(Box<ResultEvent>),
    Warning {
        exam: u32,
        kind: &'static str,
        message: String,
    },
    /// A change of the capture device's state: `streaming`, `no_signal`, `reconnected`
    /// or `failed`.
    Device {
        state: &'static str,
        message: Option<String>,
    },
    /// The last event: counts and latency of the whole session.
    Stats(SessionStats),
}

/// The risk of one exam, computed from its peak frame.
#[derive(Clone, Debug, Serialize)]
pub struct ResultEvent {
    pub exam: u32,
    pub frame: u64,
    pub time_s: f64,
    /// `[x, y, w, h]` of the ROI the features come from.
    pub roi: [u32; 4],
    pub probability: f64,
    pub risk: Risk,
    pub cutoff: f64,
    pub rad_score: f64,
    pub imaging_probability: f64,
    pub clinical_score: Option<f64>,
    pub integrated_available: bool,
    pub missing_clinical: Vec<String>,
    pub reliable: bool,
    pub reasons: Vec<String>,
    /// Wall time of preprocessing, feature extraction and scoring, milliseconds.
    pub inference_ms: f64,
    pub demo: bool,
}

/// Counts and latency over a whole session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStats {
    /// Frames analysed and shown.
    pub frames: u64,
    /// Frames lost: dropped by the driver or by the full capture queue.
    pub dropped: u64,
    /// Capture-to-display latency; `None` before the first frame.
    pub latency_ms: Option<LatencySummary>,
    pub exams: u32,
    pub duration_s: f64,
}

/// A destination of events.
pub trait EventSink {
    fn emit(&mut self, event: &Event);
}

/// Writes each event as one JSON line and flushes it, so a reader gets it at once.
///
/// A line goes out in a single write, so it never interleaves with the lines another
/// thread writes to the same stdout (the control replies).
pub struct JsonLines<W: Write> {
    out: W,
    line: Vec<u8>,
    failed: bool,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> JsonLines<W> {
        JsonLines {
            out,
            line: Vec::new(),
            failed: false,
        }
    }
}

impl<W: Write> EventSink for JsonLines<W> {
    /// Writes the event; after the first write error (a closed pipe, a full disk) the
    /// sink logs it once and stops writing, so the exam goes on.
    fn emit(&mut self, event: &Event) {
        if self.failed {
            return;
        }
        self.line.clear();
        let written = serde_json::to_writer(&mut self.line, event)
            .map_err(std::io::Error::from)
            .and_then(|()| {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            })
            .and_then(|()| self.out.flush());
        if let Err(error) = written {
            log::error!("cannot write events: {error}; no more events are written");
            self.failed = true;
        }
    }
}

/// Keeps events in memory, for tests and for the demo's summary.
#[derive(Debug, Default)]
pub struct EventLog {
    pub events: Vec<Event>,
}

impl EventSink for EventLog {
    fn emit(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json_lines() {
        let mut sink = JsonLines::new(Vec::new());
        sink.emit(&Event::BolusArrival {
            exam: 1,
            frame: 42,
            time_s: 2.8,
        });
        sink.emit(&Event::Device {
            state: "no_signal",
            message: None,
        });
        let text = String::from_utf8(sink.out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "bolus_arrival");
        assert_eq!(lines[0]["frame"], 42);
        assert_eq!(lines[1]["event"], "device");
        assert_eq!(lines[1]["state"], "no_signal");
    }

    #[test]
    fn write_error_stops_writing_without_panic() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sink = JsonLines::new(Broken);
        let event = Event::Exam {
            exam: 1,
            state: "started",
        };
        sink.emit(&event);
        sink.emit(&event);
        assert!(sink.failed);
    }
}
