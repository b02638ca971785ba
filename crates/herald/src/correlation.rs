//! Correlation and trace context for events caused by other events.
//!
//! An event published while handling another one
//! - keeps the flow's correlation id (the handled event's, or its id if it had none),
//! - names the handled event as its cause (`causationid` = the handled event's id),
//! - continues the handled event's W3C trace: same trace id, a new span id, same flags,
//!   and the same `tracestate`. Without a valid parent a new trace starts.

use rand::Rng;

use crate::envelope::Envelope;

/// A parsed W3C `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id, never all zero.
    pub trace_id: [u8; 16],
    /// 8-byte parent span id, never all zero.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; `None` if malformed or all-zero ids.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return None;
        };
        if *version != "00" {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
        let flags = *hex(flags)?.first()?;
        if trace_id != [0; 16] && span_id != [0; 8] {
            Some(Self {
                trace_id,
                span_id,
                flags,
            })
        } else {
            None
        }
    }

    /// A new sampled trace with random ids.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        Self {
            trace_id: nonzero(&mut rng),
            span_id: nonzero(&mut rng),
            flags: 0x01,
        }
    }

    /// The same trace with a new random span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(&mut rand::rng()),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            self.flags
        )
    }
}

fn nonzero<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let mut b = [0u8; N];
        rng.fill(&mut b[..]);
        if b != [0; N] {
            return b;
        }
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills in the correlation attributes of `next`, an event caused by `cause`. Attributes
/// `next` already has are kept, so a caller can start a new flow on purpose.
pub fn caused_by(mut next: Envelope, cause: &Envelope) -> Envelope {
    if next.correlation_id.is_none() {
        next.correlation_id = Some(
            cause
                .correlation_id
                .clone()
                .unwrap_or_else(|| cause.id.clone()),
        );
    }
    if next.causation_id.is_none() {
        next.causation_id = Some(cause.id.clone());
    }
    if next.traceparent.is_none() {
        let parent = cause.traceparent.as_deref().and_then(TraceParent::parse);
        next.traceparent = Some(match parent {
            Some(p) => p.child().to_string(),
            None => TraceParent::new_root().to_string(),
        });
        if parent.is_some() && next.tracestate.is_none() {
            next.tracestate = cause.tracestate.clone();
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_traceparents() {
        let t = TraceParent::parse(PARENT).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), PARENT);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn follow_up_events_inherit_correlation_and_continue_the_trace() {
        let mut cause = Envelope::new("s", "a", Vec::new())
            .with_correlation_id("flow-1")
            .with_traceparent(PARENT);
        cause.tracestate = Some("vendor=1".into());
        let next = caused_by(Envelope::new("s", "b", Vec::new()), &cause);
        assert_eq!(next.correlation_id.as_deref(), Some("flow-1"));
        assert_eq!(next.causation_id.as_deref(), Some(cause.id.as_str()));
        let t = TraceParent::parse(next.traceparent.as_deref().unwrap()).unwrap();
        let p = TraceParent::parse(PARENT).unwrap();
        assert_eq!(t.trace_id, p.trace_id);
        assert_ne!(t.span_id, p.span_id);
        assert_eq!(next.tracestate.as_deref(), Some("vendor=1"));
    }

    #[test]
    fn the_first_event_of_a_flow_correlates_by_its_own_id() {
        let cause = Envelope::new("s", "a", Vec::new());
        let next = caused_by(Envelope::new("s", "b", Vec::new()), &cause);
        assert_eq!(next.correlation_id.as_deref(), Some(cause.id.as_str()));
        assert!(TraceParent::parse(next.traceparent.as_deref().unwrap()).is_some());
        let kept = caused_by(
            Envelope::new("s", "c", Vec::new()).with_correlation_id("new-flow"),
            &cause,
        );
        assert_eq!(kept.correlation_id.as_deref(), Some("new-flow"));
    }
}
