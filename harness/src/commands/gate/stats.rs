//! Summaries of a side's samples and Welch's one-sided t-test between two sides.

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
