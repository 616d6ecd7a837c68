//! Background upkeep of a running OP: the expired-row purge (see `keybound_op::PurgeReport`).
//! Every node runs it; passes are bounded and idempotent, so nodes never need to agree on who
//! purges. A failing pass (database unreachable) is logged and retried at the next tick.

use std::sync::Arc;
use std::time::Duration;

use crate::AppState;

/// Batches per kind in one pass: a pass deletes at most `batch × MAX_BATCHES` rows per kind.
const MAX_BATCHES: u32 = 10;

/// Purge expired rows every `every`, `batch` rows per statement, until the task is aborted. A
/// pass that could not finish its backlog is followed by another at once.
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
            loop {
                match state.provider.purge_expired(batch, MAX_BATCHES).await {
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
                        tokio::task::yield_now().await;
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
