//! The curve as the overlay draws it: at most [`SPARK_POINTS`] points, however long the
//! exam, so drawing it costs the same on every frame.

/// Points kept; the overlay's sparkline is a few hundred pixels wide.
pub const SPARK_POINTS: usize = 512;

/// A decimating buffer of (time, value) points.
///
/// When it is full, neighbouring pairs are averaged into one point and every later point
/// averages twice as many samples, so the buffer always spans the whole exam.
#[derive(Debug)]
pub struct SparkBuffer {
    times_s: Box<[f64; SPARK_POINTS]>,
    values: Box<[f64; SPARK_POINTS]>,
    len: usize,
    /// Samples averaged into one point.
    stride: u32,
    pending_time: f64,
    pending_value: f64,
    pending_count: u32,
}

impl Default for SparkBuffer {
    fn default() -> SparkBuffer {
        SparkBuffer {
            times_s: Box::new([0.0; SPARK_POINTS]),
            values: Box::new([0.0; SPARK_POINTS]),
            len: 0,
            stride: 1,
            pending_time: 0.0,
            pending_value: 0.0,
            pending_count: 0,
        }
    }
}

impl SparkBuffer {
    pub fn push(&mut self, time_s: f64, value: f64) {
        if !time_s.is_finite() || !value.is_finite() {
            return;
        }
        self.pending_time += time_s;
        self.pending_value += value;
        self.pending_count += 1;
        if self.pending_count < self.stride {
            return;
        }
        if self.len == SPARK_POINTS {
            self.halve();
        }
        let count = f64::from(self.pending_count);
        self.times_s[self.len] = self.pending_time / count;
        self.values[self.len] = self.pending_value / count;
        self.len += 1;
        self.pending_time = 0.0;
        self.pending_value = 0.0;
        self.pending_count = 0;
    }

    pub fn times_s(&self) -> &[f64] {
        &self.times_s[..self.len]
    }

    pub fn values(&self) -> &[f64] {
        &self.values[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.stride = 1;
        self.pending_time = 0.0;
        self.pending_value = 0.0;
        self.pending_count = 0;
    }

    /// Averages neighbouring pairs and doubles the samples per point.
    fn halve(&mut self) {
        for i in 0..SPARK_POINTS / 2 {
            self.times_s[i] = 0.5 * (self.times_s[2 * i] + self.times_s[2 * i + 1]);
            self.values[i] = 0.5 * (self.values[2 * i] + self.values[2 * i + 1]);
        }
        self.len = SPARK_POINTS / 2;
        self.stride *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_curve_is_kept_as_it_is() {
        let mut spark = SparkBuffer::default();
        for i in 0..10 {
            spark.push(f64::from(i), f64::from(i * i));
        }
        assert_eq!(spark.times_s().len(), 10);
        assert_eq!(spark.values()[3], 9.0);
    }

    #[test]
    fn long_curve_spans_the_whole_exam() {
        let mut spark = SparkBuffer::default();
        let samples = 10 * SPARK_POINTS;
        for i in 0..samples {
            spark.push(i as f64, 1.0);
        }
        let times = spark.times_s();
        assert!(times.len() <= SPARK_POINTS);
        assert!(times.len() >= SPARK_POINTS / 2);
        assert!(times[0] < 10.0, "first point at {}", times[0]);
        // A point averages at most `samples / (SPARK_POINTS / 2)` samples, and one group
        // may be pending, so the newest point lags by less than two groups.
        let group = (samples / (SPARK_POINTS / 2)) as f64;
        assert!(
            *times.last().unwrap() > samples as f64 - 2.0 * group,
            "last point at {}",
            times.last().unwrap()
        );
        assert!(times.windows(2).all(|w| w[1] > w[0]));
        assert!(spark.values().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let mut spark = SparkBuffer::default();
        spark.push(f64::NAN, 1.0);
        spark.push(1.0, f64::INFINITY);
        assert!(spark.values().is_empty());
    }
}
