//! A measured latency distribution: a log-scale histogram the built-in collector fills with the
//! age of the first record of each batch it reads (how long the first event into an empty ring
//! waited for the collector), and that the simulator samples a wakeup latency from
//! ([`LatencySampler`]).
//!
//! Buckets are 2^(1/8) wide (about 9 %): bucket `i` holds values in
//! `[2^(i/8), 2^((i+1)/8))` ns. Recording is one `leading_zeros` and a shift; sampling picks a
//! bucket by its count and a value uniformly inside it.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two.
const SUB_BUCKETS: u32 = 8;

/// A log-scale histogram of nanosecond values. Serialized as `{"counts": [[lower_ns, count],
/// ...]}`, sparse and ordered, so it reads as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    #[serde(with = "bucket_list")]
    counts: BTreeMap<u32, u64>,
}

/// The bucket of `ns`: 8 x log2, rounded down (exact for the octave; linear inside it, which
/// keeps bucket edges at most a few percent from the geometric ones).
fn bucket_of(ns: u64) -> u32 {
    let ns = ns.max(1);
    let octave = 63 - ns.leading_zeros();
    let fraction = if octave >= 3 {
        ((ns >> (octave - 3)) & 0x7) as u32
    } else {
        ((ns << (3 - octave)) & 0x7) as u32
    };
    octave * SUB_BUCKETS + fraction
}

/// The smallest value in bucket `index` (the inverse of [`bucket_of`]).
fn lower_of(index: u32) -> u64 {
    let octave = index / SUB_BUCKETS;
    let fraction = (index % SUB_BUCKETS) as u64;
    let base = 1u64 << octave;
    if octave >= 3 {
        base + (fraction << (octave - 3))
    } else {
        (base + ((fraction * base) >> 3)).max(1)
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// `n` values of `ns` each.
    pub fn record_n(&mut self, ns: u64, n: u64) {
        if n > 0 {
            *self.counts.entry(bucket_of(ns)).or_insert(0) += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// One histogram of all the values in `parts`.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a LatencyHistogram>) -> Self {
        let mut all = LatencyHistogram::default();
        for part in parts {
            all.merge(part);
        }
        all
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (index, count) in &other.counts {
            *self.counts.entry(*index).or_insert(0) += count;
        }
    }

    /// The value below which `q` (0..=1) of the recorded values lie, to bucket precision (the
    /// bucket's lower edge).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in &self.counts {
            seen += count;
            if seen >= rank {
                return lower_of(*index);
            }
        }
        lower_of(*self.counts.keys().next_back().expect("non-empty"))
    }

    /// How many recorded values lie at or above `ns`, to bucket precision (whole buckets
    /// from the one holding `ns`).
    pub fn count_at_or_above(&self, ns: u64) -> u64 {
        self.counts
            .range(bucket_of(ns)..)
            .map(|(_, count)| count)
            .sum()
    }

    /// The mean, taking every value at its bucket's midpoint.
    pub fn mean_ns(&self) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .counts
            .iter()
            .map(|(index, count)| {
                let mid = (lower_of(*index) + lower_of(index + 1)) as f64 / 2.0;
                mid * *count as f64
            })
            .sum();
        sum / total as f64
    }

    /// Cumulative counts for fast sampling in the simulator's hot loop.
    pub fn sampler(&self) -> LatencySampler {
        let mut cumulative = Vec::with_capacity(self.counts.len());
        let mut running = 0;
        for (index, count) in &self.counts {
            running += count;
            cumulative.push((running, lower_of(*index), lower_of(index + 1)));
        }
        LatencySampler { cumulative }
    }
}

/// Draws latencies from a [`LatencyHistogram`] ([`LatencyHistogram::sampler`]) by binary search
/// over cumulative counts.
#[derive(Clone, Debug)]
pub struct LatencySampler {
    /// (cumulative count up to and including the bucket, bucket lower edge, upper edge).
    cumulative: Vec<(u64, u64, u64)>,
}

impl LatencySampler {
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let Some(&(total, _, _)) = self.cumulative.last() else {
            return 0;
        };
        let pick = rng.gen_range(0..total);
        let at = self
            .cumulative
            .partition_point(|(upto, _, _)| *upto <= pick);
        let (_, lo, hi) = self.cumulative[at];
        if hi > lo {
            rng.gen_range(lo..hi)
        } else {
            lo
        }
    }
}

mod bucket_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(counts: &BTreeMap<u32, u64>, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<[u64; 2]> = counts
            .iter()
            .map(|(index, count)| [super::lower_of(*index), *count])
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, u64>, D::Error> {
        let list = Vec::<[u64; 2]>::deserialize(d)?;
        let mut counts = BTreeMap::new();
        for [lower_ns, count] in list {
            *counts.entry(super::bucket_of(lower_ns)).or_insert(0) += count;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn buckets_are_monotonic_and_invert() {
        let mut previous = 0;
        for index in 0..(40 * SUB_BUCKETS) {
            let lower = lower_of(index);
            assert!(lower >= previous, "bucket {index}");
            previous = lower;
            if index >= 3 * SUB_BUCKETS {
                assert_eq!(bucket_of(lower), index, "lower edge of {index}");
                assert_eq!(
                    bucket_of(lower_of(index + 1) - 1),
                    index,
                    "upper edge of {index}"
                );
            }
        }
        // Widths stay within an eighth of an octave.
        for ns in [1_000u64, 9_999, 123_456, 5_000_000, 987_654_321] {
            let index = bucket_of(ns);
            assert!(lower_of(index) <= ns && ns < lower_of(index + 1), "{ns}");
            assert!((lower_of(index + 1) - lower_of(index)) as f64 <= ns as f64 / 8.0 + 1.0);
        }
    }

    #[test]
    fn quantiles_samples_and_json_follow_the_recorded_values() {
        let mut histogram = LatencyHistogram::default();
        for _ in 0..900 {
            histogram.record(10_000);
        }
        for _ in 0..100 {
            histogram.record(2_000_000);
        }
        assert_eq!(histogram.count(), 1_000);
        assert_eq!(histogram.count_at_or_above(500_000), 100);
        assert_eq!(histogram.count_at_or_above(10_000), 1_000);
        assert_eq!(histogram.count_at_or_above(3_000_000), 0);
        let near = |value: u64, want: u64| value.abs_diff(want) * 8 <= want;
        assert!(near(histogram.quantile_ns(0.5), 10_000));
        assert!(near(histogram.quantile_ns(0.95), 2_000_000));
        let mut rng = StdRng::seed_from_u64(7);
        let sampler = histogram.sampler();
        let long = (0..10_000)
            .filter(|_| sampler.sample(&mut rng) > 1_000_000)
            .count();
        assert!((800..1_200).contains(&long), "{long} of 10000 long samples");
        let text = serde_json::to_string(&histogram).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&text).unwrap();
        assert_eq!(back, histogram);
        let mut merged = back.clone();
        merged.merge(&histogram);
        assert_eq!(merged.count(), 2_000);
    }
}
