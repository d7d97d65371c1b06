//! Latency statistics.
//!
//! [`Histogram`] records nanosecond values in log-linear buckets: values
//! below 128 ns exactly, larger ones with 128 sub-buckets per power of two,
//! so any percentile it reports is within 1% of the true one while the
//! memory stays fixed (about 35 KiB) however many values are recorded.
//! Minimum, maximum, count and mean are exact.
//!
//! Percentiles use the nearest-rank definition: the p-th percentile of n
//! values is the ceil(p/100 * n)-th smallest (the smallest for p = 0).

use serde::Serialize;

/// Sub-buckets per power of two; 128 gives a relative error below 1/128.
const SUB: u64 = 128;
const SUB_BITS: u32 = 7;
/// Values are clamped to 2^40 ns (about 18 minutes): no latency the tool
/// can observe in a bounded scenario is larger.
const MAX_BITS: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_BITS - SUB_BITS) as u64 * SUB) as usize;
const MAX_VALUE: u64 = (1 << MAX_BITS) - 1;

/// A fixed-size latency histogram (see the module documentation).
#[derive(Debug, Clone)]
pub struct Histogram {
    /// counts[bucket_of(v)] is the number of recorded values in v's bucket.
    counts: Vec<u64>,
    count: u64,
    /// Exact sum, for the mean.
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = v >> shift; // in SUB..2*SUB
    (SUB + u64::from(shift) * SUB + (mantissa - SUB)) as usize
}

/// The smallest and largest value that fall in `bucket`.
fn bucket_range(bucket: usize) -> (u64, u64) {
    let b = bucket as u64;
    if b < SUB {
        return (b, b);
    }
    let shift = (b - SUB) / SUB;
    let mantissa = SUB + (b - SUB) % SUB;
    let low = mantissa << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, value_ns: u64) {
        self.counts[bucket_of(value_ns)] += 1;
        self.count += 1;
        self.sum += u128::from(value_ns);
        self.min = self.min.min(value_ns);
        self.max = self.max.max(value_ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// Nearest-rank percentile, `p` in 0..=100; `None` when empty. The
    /// value is the middle of the bucket holding that rank, kept within the
    /// exact minimum and maximum.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = nearest_rank(p, self.count);
        let mut seen = 0u64;
        for (bucket, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bucket_range(bucket);
                let mid = low + (high - low) / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The usual summary, in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |v: Option<u64>| v.map_or(f64::NAN, |ns| ns as f64 / 1e6);
        LatencySummary {
            count: self.count,
            min_ms: ms(self.min()),
            mean_ms: self.mean().map_or(f64::NAN, |ns| ns / 1e6),
            p50_ms: ms(self.percentile(50.0)),
            p90_ms: ms(self.percentile(90.0)),
            p99_ms: ms(self.percentile(99.0)),
            p999_ms: ms(self.percentile(99.9)),
            max_ms: ms(self.max()),
        }
    }
}

/// The 1-based rank of the p-th percentile among `n` values.
fn nearest_rank(p: f64, n: u64) -> u64 {
    let p = p.clamp(0.0, 100.0);
    // The product is rounded to 9 decimals first so that e.g. 99.9% of
    // 1000 is rank 999, not 1000 through floating-point error.
    let exact = (p / 100.0 * n as f64 * 1e9).round() / 1e9;
    (exact.ceil() as u64).clamp(1, n)
}

/// Exact nearest-rank percentile of already sorted values.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = nearest_rank(p, sorted.len() as u64);
    sorted.get(rank as usize - 1).copied()
}

/// Latency summary of a scenario; NaN where nothing was recorded.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Median of a list of measurements (mean of the two middle ones for an
/// even count); NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(500));
        assert_eq!(percentile_sorted(&v, 90.0), Some(900));
        assert_eq!(percentile_sorted(&v, 99.0), Some(990));
        assert_eq!(percentile_sorted(&v, 99.9), Some(999));
        assert_eq!(percentile_sorted(&v, 100.0), Some(1000));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_sorted(&[7], 99.9), Some(7));
        assert_eq!(percentile_sorted(&[], 50.0), None);
        // Four values: p50 is the 2nd, p75 the 3rd, p76 the 4th.
        assert_eq!(percentile_sorted(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile_sorted(&[10, 20, 30, 40], 75.0), Some(30));
        assert_eq!(percentile_sorted(&[10, 20, 30, 40], 76.0), Some(40));
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..128 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(63));
        assert_eq!(h.min(), Some(0));
        assert_eq!(h.max(), Some(127));
        assert_eq!(h.mean(), Some(63.5));
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert!(h.summary().p99_ms.is_nan());
    }

    #[test]
    fn buckets_tile_the_range() {
        // Every bucket starts right after the previous one ends, so each
        // value has exactly one bucket and bucket_of agrees with the range.
        let mut next = 0u64;
        for b in 0..BUCKETS {
            let (low, high) = bucket_range(b);
            assert_eq!(low, next, "bucket {b}");
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(high), b);
            next = high + 1;
        }
        assert_eq!(next, MAX_VALUE + 1);
    }

    #[test]
    fn median_of_odd_even_and_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    proptest! {
        /// The histogram's percentiles are within 1% of the exact ones, and
        /// merging two histograms equals recording everything in one.
        #[test]
        fn histogram_matches_exact(values in proptest::collection::vec(0u64..50_000_000_000, 1..2000), p in 0.0f64..=100.0) {
            let (a, b) = values.split_at(values.len() / 2);
            let mut ha = Histogram::new();
            let mut hb = Histogram::new();
            a.iter().for_each(|&v| ha.record(v));
            b.iter().for_each(|&v| hb.record(v));
            ha.merge(&hb);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let exact = percentile_sorted(&sorted, p).expect("non-empty") as f64;
            let approx = ha.percentile(p).expect("non-empty") as f64;
            prop_assert!((approx - exact).abs() <= exact / 128.0 + 1.0, "p{} exact {} approx {}", p, exact, approx);
            prop_assert_eq!(ha.count(), values.len() as u64);
            prop_assert_eq!(ha.min(), sorted.first().copied());
            prop_assert_eq!(ha.max(), sorted.last().copied());
        }
    }
}
