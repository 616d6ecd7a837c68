//! Removal of expired rows (replay entries, codes, device codes, sessions, refresh tokens), so
//! the store reaches a steady state under any traffic: every token request records its proof's
//! `jti` before anything else is looked at, so even anonymous junk requests leave rows behind
//! until they expire.
//!
//! A pass is bounded: per kind at most `max_batches` deletions of `batch` rows each, so one pass
//! never holds the database for long and a backlog is worked off over several passes. Deleting
//! an expired row is idempotent, so every node may run passes at the same time. The caller (the
//! `keybound serve` background task) decides how often; nothing here sleeps.

use keybound_store::Expiring;

use crate::{OpError, Provider};

/// What one purge pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// rows removed per kind (kinds with none are left out)
    pub removed: Vec<(Expiring, u64)>,
    /// whether every kind was purged to the end (`false`: a kind had more than
    /// `batch × max_batches` expired rows; the next pass continues)
    pub complete: bool,
}

impl PurgeReport {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }
}

impl Provider {
    /// One bounded purge pass at the provider's current time.
    pub async fn purge_expired(
        &self,
        batch: u32,
        max_batches: u32,
    ) -> Result<PurgeReport, OpError> {
        let now = self.now();
        let batch = batch.max(1);
        let mut report = PurgeReport {
            removed: Vec::new(),
            complete: true,
        };
        for kind in Expiring::ALL {
            let mut removed = 0;
            let mut finished = false;
            for _ in 0..max_batches.max(1) {
                let n = self.store().purge_expired(kind, now, batch).await?;
                removed += n;
                if n < u64::from(batch) {
                    finished = true;
                    break;
                }
            }
            report.complete &= finished;
            if removed > 0 {
                report.removed.push((kind, removed));
            }
        }
        Ok(report)
    }
}
