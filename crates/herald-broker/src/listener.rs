//! A bound Kafka listener as its connections and the request handlers see it.

/// A bound Kafka listener, as its connections see it: its security, and the address its
/// clients are told to connect to (Metadata, FindCoordinator, DescribeCluster), as a
/// Kafka broker answers each listener with its own advertised endpoint.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) tls: Option<herald_security::TlsServer>,
    pub(crate) sasl: Option<crate::SaslConfig>,
    pub(crate) advertised: (String, u16),
}

impl Listener {
    /// The advertised host and port.
    pub(crate) fn advertised(&self) -> (&str, u16) {
        (&self.advertised.0, self.advertised.1)
    }
}
