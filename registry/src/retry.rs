//! Retries with exponential backoff for transient registry failures, and the waits a
//! registry asks for itself (`Retry-After` on a 429 or 503), bounded.

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
    /// Longest `Retry-After` honoured: a registry asking for a longer wait fails the
    /// operation at once (a build should not sit silent for an hour; the error says
    /// how long the registry asked for).
    pub max_retry_after: Duration,
}

/// What a failed attempt calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Give up: the failure is not transient.
    Stop,
    /// Try again after the policy's next backoff.
    Backoff,
    /// Try again after the wait the server asked for (`Retry-After`).
    After(Duration),
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
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
        op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let retry = |e: &E| match transient(e) {
            true => Retry::Backoff,
            false => Retry::Stop,
        };
        self.run_with(what, retry, op).await
    }

    /// As [`RetryPolicy::run`], with `retry` saying per error whether to stop, back off,
    /// or wait as long as the server asked; a requested wait counts as an attempt and
    /// is honoured up to [`RetryPolicy::max_retry_after`].
    pub async fn run_with<T, E, F, Fut>(
        &self,
        what: &str,
        retry: impl Fn(&E) -> Retry,
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
                Err(e) => e,
            };
            let Some((i, delay)) = self.next_delay(retry(&e), &mut waits) else {
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

    /// The wait before the next attempt, or `None` to give up: when the failure is not
    /// transient, the attempts are used up, or the server asked for longer than
    /// `max_retry_after`.
    pub(crate) fn next_delay(
        &self,
        retry: Retry,
        waits: &mut impl Iterator<Item = (usize, Duration)>,
    ) -> Option<(usize, Duration)> {
        match retry {
            Retry::Stop => None,
            Retry::After(asked) if asked > self.max_retry_after => None,
            Retry::After(asked) => waits.next().map(|(i, _)| (i, asked)),
            Retry::Backoff => waits.next(),
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
            max_retry_after: Duration::from_secs(60),
        };
        let ms: Vec<u128> = policy.backoff().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1000, 1000]);
        let once = RetryPolicy {
            attempts: 1,
            ..policy
        };
        assert_eq!(once.backoff().count(), 0);
    }

    #[test]
    fn a_requested_wait_replaces_the_backoff_up_to_the_cap_and_uses_an_attempt() {
        let policy = RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(60),
        };
        let mut waits = policy.backoff().enumerate();
        let asked = Duration::from_secs(7);
        assert_eq!(
            policy.next_delay(Retry::After(asked), &mut waits),
            Some((0, asked))
        );
        let too_long = Duration::from_secs(61);
        assert_eq!(policy.next_delay(Retry::After(too_long), &mut waits), None);
        assert_eq!(
            policy.next_delay(Retry::Backoff, &mut waits),
            Some((1, Duration::from_millis(400)))
        );
        assert_eq!(policy.next_delay(Retry::After(asked), &mut waits), None);
        assert_eq!(
            policy.next_delay(Retry::Stop, &mut policy.backoff().enumerate()),
            None
        );
    }
}
