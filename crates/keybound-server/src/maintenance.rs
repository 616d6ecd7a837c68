//! Background upkeep of a running OP: the expired-row purge (see `keybound_op::PurgeReport`).
//! Every node runs it; passes are bounded and idempotent, so nodes never need to agree on who
//! purges. A failing pass (database unreachable) is logged and retried at the next tick.

use std::sync::Arc;
use std::time::Duration;

use crate::AppState;

/// The longest a purge pass of a backlog should hold the store.
const PASS_BUDGET: Duration = Duration::from_millis(5);

/// The smallest batch the purge shrinks to.
const MIN_BATCH: u32 = 16;

/// Purge expired rows every `every`, `batch` rows per statement, until the task is aborted.
///
/// A backlog is deleted one batch per kind at a time, each followed by a pause as long as it
/// took: the purge has the store at most half of the time, and a request's write waits behind
/// at most one batch — whose size halves while a pass takes longer than [`PASS_BUDGET`] (and
/// grows back to `batch` while it is quick), since a large table makes each deleted row dearer. Deleting a million expired replay rows back to back (ten batches per
/// pass, passes without a pause) held a 1,000/s refresh load at p50 40 ms, p99 162 ms and
/// tripled its CPU per request (`keybound-full-store`, docs/performance.md).
pub fn spawn_purge(
    state: Arc<AppState>,
    every: Duration,
    batch: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut size = batch;
            loop {
                let started = tokio::time::Instant::now();
                match state.provider.purge_expired(size, 1).await {
                    Ok(report) => {
                        state.metrics.purged(&report);
                        if report.total() > 0 {
                            tracing::debug!(
                                removed = report.total(),
                                complete = report.complete,
                                "purged expired rows"
                            );
                        }
                        if report.complete {
                            break;
                        }
                        let took = started.elapsed();
                        size = if took > PASS_BUDGET {
                            (size / 2).max(MIN_BATCH)
                        } else {
                            size.saturating_mul(2).min(batch)
                        };
                        tokio::time::sleep(took).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purging expired rows failed; retrying at the next interval");
                        break;
                    }
                }
            }
        }
    })
}
