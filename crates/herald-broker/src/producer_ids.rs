//! Producer ids for idempotent producers (InitProducerId), unique across restarts.
//!
//! Ids are reserved in blocks: the end of the current block is persisted before the first
//! id of it is handed out, so a restart continues after the block and never repeats an id
//! at the cost of skipping the rest of the block.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use crate::{
    error::BrokerError,
    store::{self, PRODUCER_IDS_FILE, ProducerIdBlock},
};

/// Ids reserved per write of the counter file.
const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
struct State {
    next: i64,
    block_end: i64,
}

/// Hands out producer ids.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    state: Mutex<State>,
}

impl ProducerIds {
    /// Opens the counter in `broker_dir`; ids start at `min_next` or later (the largest id
    /// found in the logs plus one, in case the counter file was lost).
    pub(crate) fn open(broker_dir: &Path, min_next: i64) -> Result<Self, BrokerError> {
        let path = broker_dir.join(PRODUCER_IDS_FILE);
        let stored = store::read_json::<ProducerIdBlock>(&path)?.unwrap_or_default();
        let next = stored.next_block_start.max(min_next).max(0);
        Ok(Self {
            path,
            state: Mutex::new(State {
                next,
                block_end: next,
            }),
        })
    }

    /// A fresh producer id. Blocks on a file write once per [`BLOCK_SIZE`] ids.
    pub(crate) fn allocate(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.next >= state.block_end {
            let block_end = state.next + BLOCK_SIZE;
            store::write_json(
                &self.path,
                &ProducerIdBlock {
                    next_block_start: block_end,
                },
            )?;
            state.block_end = block_end;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }

    /// Whether `id` may have been handed out by this broker (now or before a restart).
    pub(crate) fn is_known(&self, id: i64) -> bool {
        id >= 0 && id < self.state.lock().unwrap_or_else(|p| p.into_inner()).next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path(), 0).unwrap();
        let a = ids.allocate().unwrap();
        let b = ids.allocate().unwrap();
        assert_eq!((a, b), (0, 1));
        assert!(ids.is_known(1));
        assert!(!ids.is_known(2));
        drop(ids);
        let ids = ProducerIds::open(dir.path(), 0).unwrap();
        let c = ids.allocate().unwrap();
        assert!(
            c > b,
            "{c} must not repeat an id handed out before the restart"
        );
        assert!(ids.is_known(b), "ids from before the restart stay known");
        let ids = ProducerIds::open(dir.path(), 50_000).unwrap();
        assert_eq!(ids.allocate().unwrap(), 50_000);
    }
}
