//! Source polling: each source without a plugin is asked for its newest revision every
//! `poll_interval` (git: one ref advertisement when nothing changed); a new one triggers
//! the source's pipelines.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Controller, Seen, Trigger};
use crate::config::SourceKind;
use crate::reconcile::blocking;
use crate::secrets::SecretValues;

/// How long a poll may take before it is stopped, unless its poll interval is longer.
const POLL_TIMEOUT: Duration = Duration::from_secs(60);

impl Controller {
    /// Polls sources for new revisions (git: one ref advertisement when nothing changed).
    pub(super) async fn poll_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if !self.is_leader() {
                continue;
            }
            let config = self.config();
            for source in &config.sources {
                let name = source.name.as_str();
                let every = source.poll_interval.0;
                if every.is_zero() || matches!(source.kind, SourceKind::Plugin(_)) {
                    continue;
                }
                let now = Instant::now();
                // Due (and then booked for the next poll) under one lock.
                let due = match self.lock().next_poll.entry(name.into()) {
                    std::collections::hash_map::Entry::Occupied(at) if *at.get() > now => false,
                    entry => {
                        entry.insert_entry(now + every);
                        true
                    }
                };
                // Sharded: a member polls the sources of the pipelines it owns.
                let polls_here = due && {
                    let st = self.lock();
                    config.pipelines.iter().any(|p| p.source == name && st.owns(&p.name))
                };
                if !polls_here {
                    continue;
                }
                let secrets = match SecretValues::for_source(Some(&self.target.client), &config, source).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(source = name, "poll: {e}");
                        continue;
                    }
                };
                // A server that stalls holds the source (and the runs that read it) no longer than this.
                let interrupt = crate::interrupt::Interrupt::after(every.max(POLL_TIMEOUT));
                let snapshot = blocking(|| self.moor.sources().snapshot(&config, source, &secrets, &interrupt));
                let revision = match snapshot {
                    Ok(s) => s.revision,
                    Err(e) => {
                        tracing::warn!(source = name, "poll: {e}");
                        continue;
                    }
                };
                let news = {
                    let mut st = self.lock();
                    match st.sources.get(name) {
                        Some(seen) if seen.revision == revision => false,
                        previous => {
                            let first = previous.is_none();
                            st.sources.insert(name.into(), Seen { revision: revision.clone(), at: SystemTime::now() });
                            !first
                        }
                    }
                };
                if news {
                    tracing::info!(source = name, revision, "new revision");
                    for p in config.pipelines.iter().filter(|p| p.source == name) {
                        let _ = self.trigger(&p.name, Trigger::Revision);
                    }
                }
            }
        }
    }
}
