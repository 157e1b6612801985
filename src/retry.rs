//! One retry policy for everything that tries again after a transient failure: S3
//! requests, CMR pages, and whole steps when the CLI chains them. Bounded attempts,
//! exponential backoff with full jitter, so many workers retrying at once spread out.

use std::future::Future;
use std::time::Duration;

/// How often to try and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all, the first included (at least one is made).
    pub attempts: u32,
    /// The wait before the second try is drawn from `0..=2 × first`; it doubles for
    /// each try after that.
    pub first: Duration,
}

impl Backoff {
    /// S3 requests: the SDK retries throttles and 5xx itself, but not a connection
    /// closed before the answer or a body cut short, which S3 also does now and then.
    pub const S3: Backoff = Backoff {
        attempts: 5,
        first: Duration::from_millis(100),
    };

    /// One step of a chained run, as the state machines' `Retry` does (every step is
    /// idempotent).
    pub const STEP: Backoff = Backoff {
        attempts: 3,
        first: Duration::from_millis(200),
    };

    /// The wait after failed try number `attempt` (1 for the first try).
    pub fn wait(&self, attempt: u32) -> Duration {
        let cap = self.first.saturating_mul(1 << attempt.min(16));
        cap.mul_f64(rand::random::<f64>())
    }

    /// `call` until it succeeds, fails for good (`retryable` says no), or the tries run
    /// out; the last error is returned. `on_retry` hears of each failure retried.
    pub async fn retry<T, E, F, Fut>(
        &self,
        mut call: F,
        retryable: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(u32, &E),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if retryable(&e) && attempt < self.attempts => {
                    on_retry(attempt, &e);
                    tokio::time::sleep(self.wait(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const QUICK: Backoff = Backoff {
        attempts: 4,
        first: Duration::from_millis(1),
    };

    #[tokio::test]
    async fn a_transient_failure_is_tried_again_until_the_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let mut heard = Vec::new();
        let out: Result<(), &str> = QUICK
            .retry(
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("503")
                },
                |_| true,
                |attempt, _| heard.push(attempt),
            )
            .await;
        assert_eq!(out, Err("503"));
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!(heard, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_final_failure_is_tried_once_and_a_success_ends_the_tries() {
        let calls = AtomicU32::new(0);
        let out: Result<(), &str> = QUICK
            .retry(
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("404")
                },
                |e| *e != "404",
                |_, _| {},
            )
            .await;
        assert_eq!((out, calls.load(Ordering::Relaxed)), (Err("404"), 1));

        let calls = AtomicU32::new(0);
        let out = QUICK
            .retry(
                || async {
                    match calls.fetch_add(1, Ordering::Relaxed) {
                        0 => Err("reset"),
                        n => Ok(n),
                    }
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert_eq!(out, Ok(1));
    }

    #[test]
    fn waits_stay_under_a_cap_that_doubles() {
        let b = Backoff {
            attempts: 5,
            first: Duration::from_millis(100),
        };
        for attempt in 1..5 {
            let cap = Duration::from_millis(100 << attempt);
            assert!((0..50).all(|_| b.wait(attempt) <= cap), "attempt {attempt}");
        }
    }
}
