//! Records that a run skipped (unreadable, unscorable), counted and the first ones kept with
//! their reasons, so that a summary can say what was lost and where.

/// How many reasons a summary keeps; the count covers all of them.
pub const MAX_REASONS_KEPT: usize = 50;

/// The skipped records of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkipLog {
    pub count: u64,
    /// The first [`MAX_REASONS_KEPT`] reasons, each naming the file, line and record.
    pub reasons: Vec<String>,
}

impl SkipLog {
    /// Counts one skipped record, logs it, and keeps its reason if there is room.
    pub fn skip(&mut self, reason: String) {
        tracing::warn!("skipped: {reason}");
        self.count += 1;
        if self.reasons.len() < MAX_REASONS_KEPT {
            self.reasons.push(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_all_keeps_the_first() {
        let mut s = SkipLog::default();
        for i in 0..(MAX_REASONS_KEPT + 7) {
            s.skip(format!("line {i}"));
        }
        assert_eq!(s.count, MAX_REASONS_KEPT as u64 + 7);
        assert_eq!(s.reasons.len(), MAX_REASONS_KEPT);
        assert_eq!(s.reasons[0], "line 0");
    }
}
