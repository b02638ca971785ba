//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last five batches, as Kafka keeps them.
//!
//! A producer retries a batch it has no answer for. The retry carries the same sequence
//! numbers, so a batch that matches one of the last five is a duplicate: it is not
//! written again and the producer gets the offset of the original. A batch whose first
//! sequence does not follow the last one is out of order (something in between was lost)
//! and is refused.

use std::collections::{HashMap, VecDeque};

use herald_format::batch::BatchHeader;

/// How many batches per producer Kafka (and so every client) expects to be remembered.
pub(crate) const BATCHES_PER_PRODUCER: usize = 5;

/// What to do with a batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// The batch is new and in sequence: append it.
    Append,
    /// The batch repeats one already written at `base_offset`: answer with that offset
    /// and write nothing.
    Duplicate {
        /// Offset where the original batch starts.
        base_offset: i64,
    },
}

/// Why a batch from an idempotent producer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The first sequence does not follow the last written one.
    #[error(
        "out of order sequence number for producer {producer_id}: expected {expected}, got {got}"
    )]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The sequence that would have been in order.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// The batch comes from an older epoch of the producer (it was fenced).
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    StaleEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch the partition knows.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
    /// An idempotent batch without a base sequence.
    #[error("batch from producer {producer_id} has no base sequence")]
    MissingSequence {
        /// The producer.
        producer_id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// Sequence numbers wrap from `i32::MAX` to 0.
fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

fn last_sequence(header: &BatchHeader) -> i32 {
    let span = i64::from(header.last_offset_delta.max(0));
    let last = i64::from(header.base_sequence) + span;
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

/// Idempotent-producer state of one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Decides what to do with `header`'s batch. Batches without a producer id are always
    /// appended. A producer this partition has no state for may start at any sequence,
    /// as in Kafka: its earlier batches may have been removed by retention.
    pub(crate) fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let producer_id = header.producer_id;
        if producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        if header.base_sequence < 0 {
            return Err(SequenceError::MissingSequence { producer_id });
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        let first = header.base_sequence;
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch starts its sequences over.
            return if first == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first,
                })
            };
        }
        let last = last_sequence(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        match entry.batches.back() {
            Some(newest) if first != next_sequence(newest.last_seq) => {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: next_sequence(newest.last_seq),
                    got: first,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records that `header`'s batch was written at `base_offset` (after [`check`] said
    /// [`SequenceCheck::Append`], or while replaying the log at startup).
    ///
    /// [`check`]: Self::check
    pub(crate) fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            base_offset,
        });
    }

    /// Largest producer id seen, if any.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, first_seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            record_count: records,
        }
    }

    fn append(states: &mut ProducerStates, h: &BatchHeader, offset: i64) {
        assert_eq!(states.check(h), Ok(SequenceCheck::Append), "{h:?}");
        states.record(h, offset);
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStates::new();
        append(&mut s, &header(7, 0, 0, 3), 0);
        append(&mut s, &header(7, 0, 3, 2), 3);
        assert_eq!(
            s.check(&header(7, 0, 0, 3)),
            Ok(SequenceCheck::Duplicate { base_offset: 0 })
        );
        assert_eq!(
            s.check(&header(7, 0, 3, 2)),
            Ok(SequenceCheck::Duplicate { base_offset: 3 })
        );
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut s = ProducerStates::new();
        append(&mut s, &header(7, 0, 0, 3), 0);
        assert_eq!(
            s.check(&header(7, 0, 4, 1)),
            Err(SequenceError::OutOfOrder {
                producer_id: 7,
                expected: 3,
                got: 4
            })
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::new();
        for i in 0..6 {
            append(&mut s, &header(1, 0, i, 1), i64::from(i) * 10);
        }
        // Batch 0 fell out of the window: it is no longer recognised as a duplicate.
        assert!(matches!(
            s.check(&header(1, 0, 0, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(
            s.check(&header(1, 0, 1, 1)),
            Ok(SequenceCheck::Duplicate { base_offset: 10 })
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStates::new();
        append(&mut s, &header(1, 3, 0, 2), 0);
        assert!(matches!(
            s.check(&header(1, 2, 2, 1)),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert!(matches!(
            s.check(&header(1, 4, 5, 1)),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        append(&mut s, &header(1, 4, 0, 1), 2);
        append(&mut s, &header(1, 4, 1, 1), 3);
    }

    #[test]
    fn unknown_producers_and_plain_batches_append() {
        let s = ProducerStates::new();
        assert_eq!(s.check(&header(-1, -1, -1, 5)), Ok(SequenceCheck::Append));
        assert_eq!(s.check(&header(9, 0, 42, 1)), Ok(SequenceCheck::Append));
        assert!(matches!(
            s.check(&header(9, 0, -1, 1)),
            Err(SequenceError::MissingSequence { .. })
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStates::new();
        append(&mut s, &header(1, 0, i32::MAX - 1, 2), 0);
        append(&mut s, &header(1, 0, 0, 1), 2);
        assert_eq!(last_sequence(&header(1, 0, i32::MAX, 3)), 1);
    }
}
