//! Per-frame latency, from the end of capture to the overlay leaving for the display,
//! collected in a fixed histogram so that recording a frame allocates nothing.

use std::time::Duration;

use serde::Serialize;

/// Width of one histogram bin.
const BIN: Duration = Duration::from_micros(100);
/// Bins from 0 to 2 s; slower frames count in the last bin and in `max`.
const BINS: usize = 20_000;

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// A histogram of latencies with 0.1 ms bins.
#[derive(Debug)]
pub struct LatencyHistogram {
    bins: Box<[u32; BINS]>,
    count: u64,
    max: Duration,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            bins: Box::new([0; BINS]),
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let bin = (latency.as_nanos() / BIN.as_nanos()).min(BINS as u128 - 1) as usize;
        self.bins[bin] = self.bins[bin].saturating_add(1);
        self.count += 1;
        self.max = self.max.max(latency);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The upper edge of the bin holding the `fraction` quantile, in milliseconds, so a
    /// percentile is never reported lower than it was; the maximum when the quantile is
    /// in the overflow bin; `None` before the first record.
    pub fn percentile_ms(&self, fraction: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((fraction.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bin, &count) in self.bins.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank && bin < BINS - 1 {
                let upper = BIN * (bin as u32 + 1);
                return Some(upper.min(self.max).as_secs_f64() * 1e3);
            }
        }
        Some(self.max.as_secs_f64() * 1e3)
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        Some(LatencySummary {
            p50: self.percentile_ms(0.50)?,
            p95: self.percentile_ms(0.95)?,
            p99: self.percentile_ms(0.99)?,
            max: self.max.as_secs_f64() * 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut histogram = LatencyHistogram::default();
        for ms in 1..=100u64 {
            histogram.record(Duration::from_micros(ms * 1000 - 50));
        }
        let summary = histogram.summary().unwrap();
        assert!((summary.p50 - 50.0).abs() < 0.11, "{summary:?}");
        assert!((summary.p95 - 95.0).abs() < 0.11, "{summary:?}");
        assert!((summary.p99 - 99.0).abs() < 0.11, "{summary:?}");
        assert!((summary.max - 99.95).abs() < 1e-9, "{summary:?}");
    }

    #[test]
    fn slow_frames_stay_in_the_maximum() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(Duration::from_secs(5));
        assert_eq!(histogram.percentile_ms(0.5), Some(5000.0));
        assert_eq!(histogram.summary().unwrap().max, 5000.0);
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        assert_eq!(LatencyHistogram::default().summary(), None);
    }
}
