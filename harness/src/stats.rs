//! The statistics every report shares: a sample's summary, its 95 % confidence interval
//! (Student's t), Welch's one-sided test between two samples, and paired per-boot ratios.
//!
//! The unit of replication is the boot (docs/results.md): trials of one boot share its
//! state, so a comparison first reduces each boot to one value (the mean of its trials) and
//! then summarizes over boots. "A vs B" is the geometric mean of the per-boot ratios A/B with
//! a t interval on their logarithms, so a ratio and its inverse get the same interval.

use std::collections::BTreeMap;

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation and count of one side's samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for one sample.
    pub sd: f64,
}

impl Summary {
    /// `None` without samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len();
        // Equal samples summed and divided are not always equal to themselves (3 × 0.1 / 3):
        // keep them exact, so that "no variance" is recognized and reported as 0.
        if samples.iter().all(|&x| x == samples[0]) {
            return Some(Summary {
                n,
                mean: samples[0],
                sd: 0.0,
            });
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            let squares: f64 = samples.iter().map(|x| (x - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        };
        Some(Summary { n, mean, sd })
    }

    /// Squared standard error of the mean.
    fn var_of_mean(&self) -> f64 {
        self.sd * self.sd / self.n as f64
    }

    /// The two-sided 95 % confidence interval of the mean (Student's t with n − 1 degrees of
    /// freedom); `None` for fewer than two samples.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        if self.n < 2 {
            return None;
        }
        let t = StudentsT::new(0.0, 1.0, (self.n - 1) as f64)
            .ok()?
            .inverse_cdf(0.975);
        let half = t * self.var_of_mean().sqrt();
        Some((self.mean - half, self.mean + half))
    }
}

/// A mean with its 95 % confidence interval over `n` units (boots); no interval for one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub n: usize,
    pub mean: f64,
    pub ci95: Option<(f64, f64)>,
}

impl Interval {
    /// The mean and t interval of `samples`; `None` without samples.
    pub fn of(samples: &[f64]) -> Option<Interval> {
        let summary = Summary::of(samples)?;
        Some(Interval {
            n: summary.n,
            mean: summary.mean,
            ci95: summary.ci95(),
        })
    }

    /// As [`Interval::of`], with the interval cut at 0 when no sample is negative: a loss, a
    /// rate or a wait cannot be below 0, so neither can its mean, and a t interval over three
    /// boots would otherwise reach below it.
    pub fn of_nonnegative(samples: &[f64]) -> Option<Interval> {
        let interval = Interval::of(samples)?;
        Some(if samples.iter().all(|x| *x >= 0.0) {
            interval.within(0.0, f64::MAX)
        } else {
            interval
        })
    }

    /// The interval cut to the range the quantity can take (a share is never below 0): a t
    /// interval is symmetric and, over few boots, reaches past it.
    pub fn within(self, low: f64, high: f64) -> Interval {
        Interval {
            ci95: self
                .ci95
                .map(|(l, h)| (l.clamp(low, high), h.clamp(low, high))),
            ..self
        }
    }

    /// `12.3 [10.1, 14.5]` with `decimals` places, or `12.3 (n=1)` without an interval.
    pub fn display(&self, decimals: usize) -> String {
        match self.ci95 {
            Some((low, high)) => format!(
                "{:.d$} [{:.d$}, {:.d$}]",
                self.mean,
                low,
                high,
                d = decimals
            ),
            None => format!("{:.d$} (n={})", self.mean, self.n, d = decimals),
        }
    }
}

/// The mean of each boot's values: `(boot, value)` pairs in, one mean per boot out.
pub fn boot_means(values: impl IntoIterator<Item = (u32, f64)>) -> BTreeMap<u32, f64> {
    let mut sums: BTreeMap<u32, (f64, usize)> = BTreeMap::new();
    for (boot, value) in values {
        let entry = sums.entry(boot).or_default();
        entry.0 += value;
        entry.1 += 1;
    }
    sums.into_iter()
        .map(|(boot, (sum, n))| (boot, sum / n as f64))
        .collect()
}

/// A over B paired by boot: the geometric mean of the per-boot ratios `a[boot] / b[boot]`
/// (boots both have, with positive values) and its 95 % interval from a t interval on the
/// logarithms. `None` when no boot pairs up.
pub fn paired_ratio(a: &BTreeMap<u32, f64>, b: &BTreeMap<u32, f64>) -> Option<Interval> {
    let logs: Vec<f64> = a
        .iter()
        .filter_map(|(boot, x)| {
            let y = b.get(boot)?;
            (*x > 0.0 && *y > 0.0).then(|| (x / y).ln())
        })
        .collect();
    let log = Interval::of(&logs)?;
    Some(Interval {
        n: log.n,
        mean: log.mean.exp(),
        ci95: log.ci95.map(|(low, high)| (low.exp(), high.exp())),
    })
}

/// The geometric mean of ratios: a ratio and its inverse average to 1, so a mean over
/// ratios that fall on both sides of 1 is not pulled above 1 by the large ones the way an
/// arithmetic mean is. `None` without values or with one that is not positive and finite.
pub fn geometric_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return None;
    }
    Some((values.iter().map(|x| x.ln()).sum::<f64>() / values.len() as f64).exp())
}

/// A Welch t-test's statistic, Welch–Satterthwaite degrees of freedom and one-sided p.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    pub t: f64,
    pub df: f64,
    pub p: f64,
}

/// Welch's one-sided test of mean(x) − mean(y) > `margin`. `None` when it cannot run: a side
/// with fewer than two samples, or no variance on either side (then the answer is simply
/// whether the difference exceeds the margin).
pub fn welch_greater(x: &Summary, y: &Summary, margin: f64) -> Option<Welch> {
    if x.n < 2 || y.n < 2 {
        return None;
    }
    let (vx, vy) = (x.var_of_mean(), y.var_of_mean());
    let se2 = vx + vy;
    if se2 <= 0.0 || !se2.is_finite() {
        return None;
    }
    let df = se2 * se2 / (vx * vx / (x.n - 1) as f64 + vy * vy / (y.n - 1) as f64);
    let t = (x.mean - y.mean - margin) / se2.sqrt();
    let p = StudentsT::new(0.0, 1.0, df).ok()?.sf(t);
    Some(Welch { t, df, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_mean_of_a_ratio_and_its_inverse_is_one() {
        let mean = geometric_mean(&[0.5, 2.0]).unwrap();
        assert!((mean - 1.0).abs() < 1e-12);
        // The arithmetic mean of the same two says 1.25.
        assert!((geometric_mean(&[1.0, 4.0, 16.0]).unwrap() - 4.0).abs() < 1e-12);
        assert_eq!(geometric_mean(&[]), None);
        assert_eq!(geometric_mean(&[1.0, 0.0]), None);
        assert_eq!(geometric_mean(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn the_interval_is_students_t() {
        // [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 4.302653.
        let interval = Interval::of(&[1.0, 2.0, 3.0]).unwrap();
        let half = 4.302_652_729_749_464 / 3f64.sqrt();
        let (low, high) = interval.ci95.unwrap();
        assert!((low - (2.0 - half)).abs() < 1e-6 && (high - (2.0 + half)).abs() < 1e-6);
        assert_eq!(interval.display(1), "2.0 [-0.5, 4.5]");
        assert_eq!(Interval::of(&[7.0]).unwrap().display(0), "7 (n=1)");
        assert_eq!(Interval::of(&[]), None);
        // Losses cannot be negative: the interval stops at 0; with a negative sample it doesn't.
        assert_eq!(
            Interval::of_nonnegative(&[1.0, 2.0, 3.0])
                .unwrap()
                .display(1),
            "2.0 [0.0, 4.5]"
        );
        assert_eq!(
            Interval::of_nonnegative(&[-1.0, 2.0, 3.0]).unwrap().ci95,
            Interval::of(&[-1.0, 2.0, 3.0]).unwrap().ci95
        );
    }

    #[test]
    fn ratios_pair_by_boot() {
        let a = boot_means([(0, 2.0), (0, 4.0), (1, 8.0), (2, 5.0)]);
        assert_eq!(a, BTreeMap::from([(0, 3.0), (1, 8.0), (2, 5.0)]));
        let b = BTreeMap::from([(0, 3.0), (1, 4.0), (3, 1.0)]);
        // Boots 0 and 1 pair: ratios 1 and 2, geometric mean sqrt(2).
        let ratio = paired_ratio(&a, &b).unwrap();
        assert_eq!(ratio.n, 2);
        assert!((ratio.mean - 2f64.sqrt()).abs() < 1e-12);
        let (low, high) = ratio.ci95.unwrap();
        assert!(low < 1.0 && high > 2.0, "{low} {high}");
        // The inverse ratio has the inverse interval.
        let inverse = paired_ratio(&b, &a).unwrap();
        assert!((inverse.mean * ratio.mean - 1.0).abs() < 1e-12);
        assert!((inverse.ci95.unwrap().0 * high - 1.0).abs() < 1e-9);
        assert_eq!(paired_ratio(&a, &BTreeMap::new()), None);
    }

    #[test]
    fn welch_matches_a_hand_computed_value() {
        // [1,2,3] vs [4,5,6]: means 2 and 5, variances 1, se = sqrt(1/3 + 1/3), t = 3 / se =
        // 3.6742346; df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4; one-sided p = P(T4 > t) =
        // 0.0106558 (Student's t with 4 degrees of freedom has a closed-form CDF).
        let x = Summary::of(&[4.0, 5.0, 6.0]).unwrap();
        let y = Summary::of(&[1.0, 2.0, 3.0]).unwrap();
        let welch = welch_greater(&x, &y, 0.0).unwrap();
        assert!((welch.t - 3.674_234_614_174_767).abs() < 1e-9, "{welch:?}");
        assert!((welch.df - 4.0).abs() < 1e-12, "{welch:?}");
        assert!((welch.p - 0.010_655_820_564).abs() < 1e-7, "{welch:?}");
        // Shifting by the margin tests the excess: 3 − 3 = 0 is a coin toss.
        let shifted = welch_greater(&x, &y, 3.0).unwrap();
        assert!(shifted.t.abs() < 1e-12 && (shifted.p - 0.5).abs() < 1e-9);
        // Unequal variances and sizes: df from Welch–Satterthwaite, not n1 + n2 − 2.
        let wide = Summary::of(&[0.0, 10.0, 20.0, 30.0]).unwrap();
        let welch = welch_greater(&wide, &y, 0.0).unwrap();
        let (vx, vy) = (wide.sd.powi(2) / 4.0, 1.0 / 3.0);
        let df = (vx + vy).powi(2) / (vx * vx / 3.0 + vy * vy / 2.0);
        assert!((welch.df - df).abs() < 1e-12 && welch.df < 5.0);
        // Not runnable: one sample, or no variance at all.
        let one = Summary::of(&[1.0]).unwrap();
        assert_eq!(welch_greater(&one, &y, 0.0), None);
        let flat = Summary::of(&[2.0, 2.0]).unwrap();
        assert_eq!(welch_greater(&flat, &flat, 0.0), None);
    }
}
