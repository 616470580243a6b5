//! Retries with exponential backoff for transient registry failures.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub initial_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The waits before each retry, in order: `attempts - 1` of them, doubling from
    /// `initial_delay` up to `max_delay`. Every retry loop of the crate walks this, so
    /// they all back off alike.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> {
        let max = self.max_delay;
        std::iter::successors(Some(self.initial_delay), move |d| Some((*d * 2).min(max)))
            .take(self.attempts.saturating_sub(1) as usize)
    }

    /// Runs `op` until it succeeds, fails with an error `transient` rejects, or runs out
    /// of attempts.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        mut op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut waits = self.backoff().enumerate();
        loop {
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) => e,
                Err(e) => return Err(e),
            };
            let Some((i, delay)) = waits.next() else {
                return Err(e);
            };
            tracing::warn!(
                "{what}: {e}; retrying in {delay:?} (attempt {} of {})",
                i + 1,
                self.attempts
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit_once_per_retry() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(1000),
        };
        let ms: Vec<u128> = policy.backoff().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1000, 1000]);
        let once = RetryPolicy {
            attempts: 1,
            ..policy
        };
        assert_eq!(once.backoff().count(), 0);
    }
}
