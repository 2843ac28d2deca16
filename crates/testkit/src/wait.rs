//! Waiting for something to become true, with a deadline instead of a fixed sleep.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(10);

/// Runs `attempt` until it returns `Ok`, checking again every 10 ms; returns its value.
///
/// Panics when `within` has passed, with the description the last `Err` gave (say what was seen,
/// not only what was expected: `Err(format!("server counts {counts:?}, want 3"))`).
pub async fn eventually<T>(
    within: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(why) if tokio::time::Instant::now() >= deadline => {
                panic!("not within {within:?}: {why}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`eventually`] for code outside a runtime (fixtures starting a service process).
pub fn eventually_blocking<T>(
    within: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => panic!("not within {within:?}: {why}"),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// `Ok(())` when `ok`, else `Err(why())`: the usual last line of an [`eventually`] attempt.
pub fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut n = 0;
        let got = eventually(Duration::from_secs(5), async || {
            n += 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("n = {n}"))
            }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_with_the_last_reason() {
        let outcome = tokio::spawn(eventually(Duration::from_millis(50), async || {
            Err::<(), _>("still 1 of 2".to_owned())
        }))
        .await;
        let panic = outcome.err().map(|e| e.into_panic());
        let text = panic
            .as_ref()
            .and_then(|p| p.downcast_ref::<String>())
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("still 1 of 2"), "{text}");
    }

    #[test]
    fn blocking_variant_waits_too() {
        let start = Instant::now();
        let waited = eventually_blocking(Duration::from_secs(5), || {
            let elapsed = start.elapsed();
            check(elapsed > Duration::from_millis(30), || "early".into()).map(|()| elapsed)
        });
        assert!(waited > Duration::from_millis(30));
    }
}
