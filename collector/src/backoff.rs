//! The one backoff of the project: the autoscaler's failing targets and node pools and the
//! collector's unreachable spans peers all wait with it.

use std::time::Duration;

/// The wait after `failures` failures in a row (at least 1): `base` doubled per failure up to `max`,
/// scaled by 0.8 + 0.4 x `jitter` (`jitter` in [0, 1)) so that what failed together does not retry
/// together.
pub fn backoff(failures: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    base.saturating_mul(1u32 << failures.min(16))
        .min(max)
        .mul_f64(0.8 + 0.4 * jitter)
}
