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
        let mut delay = self.initial_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.attempts && transient(&e) => {
                    tracing::warn!(
                        "{what}: {e}; retrying in {delay:?} (attempt {attempt} of {})",
                        self.attempts
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
