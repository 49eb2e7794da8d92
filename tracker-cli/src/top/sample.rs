//! One refresh's worth of data from a segment.

use tracker_core::ClassSnapshot;
use tracker_shm::{
    monotonic_ns, writer_state, Event, EventCursor, HeaderInfo, History, ReadError, Segment,
    WriterState,
};

/// Everything the view needs from one read of the segment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The header.
    pub header: HeaderInfo,
    /// The writer's state.
    pub state: WriterState,
    /// This host's `CLOCK_MONOTONIC` at the read, ns.
    pub now_ns: u64,
    /// Published classes with their slots.
    pub classes: Vec<(u32, ClassSnapshot)>,
    /// The history kept in the segment: tier 0 (every sample).
    pub history: History,
    /// Tiers 1 and 2 (every minute and every hour at the default period).
    pub coarse: [History; 2],
    /// Sampled creation sites.
    pub sites: Vec<tracker_shm::Site>,
    /// Events published since the previous read.
    pub events: Vec<Event>,
    /// Events missed since the previous read.
    pub lost: u64,
}

/// Reads samples, following the event ring between reads.
pub struct Reader {
    cursor: EventCursor,
}

impl Reader {
    /// Starts at the oldest event still in the ring.
    pub fn new(segment: &Segment) -> Reader {
        Reader {
            cursor: segment.events_from_oldest(),
        }
    }

    /// Reads one sample.
    ///
    /// # Errors
    /// [`ReadError::Shrunk`] when the segment's file shrank while it was
    /// read: the sample is discarded, and so is the segment.
    pub fn read(&mut self, segment: &Segment) -> Result<Sample, ReadError> {
        let mut events = Vec::new();
        let lost = segment.poll_events(&mut self.cursor, &mut events);
        let sample = Sample {
            header: segment.header(),
            state: writer_state(segment),
            now_ns: monotonic_ns(),
            classes: segment.classes(),
            history: segment.history(),
            coarse: [segment.history_tier(1), segment.history_tier(2)],
            sites: segment.sites(),
            events,
            lost,
        };
        segment.intact()?;
        Ok(sample)
    }
}
