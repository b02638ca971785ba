//! Starting and stopping the broker: the Kafka listener, one task per connection, the
//! retention timer, and a graceful shutdown that lets requests in flight finish before
//! the logs are closed.

use std::{collections::VecDeque, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use bytes::BytesMut;
use herald_security::tls::{self, HandshakeError};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::{JoinHandle, JoinSet},
};

use crate::{
    broker::{Broker, Core},
    config::BrokerConfig,
    error::BrokerError,
    frame::{self, FrameError},
    handlers::{
        self, Handled, RequestError,
        sasl::{BeforeAuth, SaslSession},
    },
    listener::Listener,
    request_budget::{RequestBudget, Reservation},
};

/// A running broker. Dropping it without [`shutdown`](Self::shutdown) stops the tasks
/// and closes the logs on a best-effort basis.
#[derive(Debug)]
pub struct BrokerHandle {
    broker: Broker,
    kafka_addrs: Vec<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    acceptors: Vec<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BrokerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr, source })?;
    Ok((listener, bound))
}

impl Broker {
    /// Opens the data directory, binds the Kafka listeners and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
        let (listener, kafka_addr) = bind(config.kafka_listen).await?;
        let mut more = Vec::with_capacity(config.more_listeners.len());
        for l in &config.more_listeners {
            more.push((bind(l.listen).await?, l.clone()));
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let core = {
            let rx = shutdown_rx.clone();
            tokio::task::spawn_blocking(move || Core::open(config, kafka_addr, rx))
                .await
                .map_err(|e| BrokerError::Task(e.to_string()))??
        };
        let broker = Broker {
            core: Arc::new(core),
        };
        let config = broker.config();
        let (host, port) = broker.advertised_address();
        let primary = Listener {
            tls: config.tls.clone(),
            sasl: config.sasl.clone(),
            advertised: (host.to_owned(), port),
        };
        let mut listeners = vec![(listener, kafka_addr, primary)];
        for ((listener, bound), l) in more {
            let host = config.advertised_host.clone().unwrap_or_else(|| {
                if bound.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    bound.ip().to_string()
                }
            });
            let state = Listener {
                tls: l.tls,
                sasl: l.sasl,
                advertised: (host, bound.port()),
            };
            listeners.push((listener, bound, state));
        }
        let mut kafka_addrs = Vec::with_capacity(listeners.len());
        let mut acceptors = Vec::with_capacity(listeners.len());
        for (listener, bound, state) in listeners {
            tracing::info!(
                kafka_addr = %bound,
                security_protocol = crate::config::security_protocol(state.tls.is_some(), state.sasl.is_some()),
                advertised = %format!("{}:{}", state.advertised.0, state.advertised.1),
                data_dir = %config.data_dir.display(),
                topics = broker.topics().list().len(),
                "herald broker listening"
            );
            kafka_addrs.push(bound);
            acceptors.push(tokio::spawn(accept_loop(
                listener,
                Arc::new(state),
                broker.clone(),
                shutdown_rx.clone(),
            )));
        }
        let retention = tokio::spawn(retention_loop(broker.clone(), shutdown_rx));
        Ok(BrokerHandle {
            broker,
            kafka_addrs,
            shutdown_tx,
            acceptors,
            retention: Some(retention),
        })
    }
}

impl BrokerHandle {
    /// The address the (first) Kafka listener is bound to (with the real port when port
    /// 0 was asked for).
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addrs[0]
    }

    /// Every Kafka listener's address: the first, then
    /// [`more_listeners`](BrokerConfig::more_listeners) in order.
    pub fn kafka_addrs(&self) -> &[SocketAddr] {
        &self.kafka_addrs
    }

    /// The broker core, for embedders (HTTP API, CLI).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Stops gracefully: stops accepting connections, lets every request in flight finish
    /// (long-polling fetches return at once), then syncs and closes every log.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        self.stop_tasks().await?;
        let broker = self.broker.clone();
        let result = tokio::task::spawn_blocking(move || broker.core.topics.close_all())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))?;
        tracing::info!(kafka_addr = %self.kafka_addrs[0], "herald broker stopped");
        result
    }

    async fn stop_tasks(&mut self) -> Result<(), BrokerError> {
        let _ = self.shutdown_tx.send(true);
        // Rebalances can wait for minutes: the coordinator answers its waiting JoinGroup
        // and SyncGroup requests at once, so that the connections can finish.
        self.broker.core.groups.shutdown().await;
        let acceptors = std::mem::take(&mut self.acceptors);
        for task in acceptors.into_iter().chain(self.retention.take()) {
            task.await.map_err(|e| BrokerError::Task(e.to_string()))?;
        }
        Ok(())
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        // Tasks see the signal and end; the logs close when the last reference goes.
        let _ = self.shutdown_tx.send(true);
    }
}

/// Resolves once a shutdown has begun.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Listener>,
    broker: Broker,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        // Room in the connection budget first: at the limit, new clients wait in the
        // listen backlog, as Kafka's max.connections makes them.
        let reserved = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            reserved = broker.core.connections.reserve() => reserved,
        };
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = reserved.admit(peer.ip()) else {
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let state = state.clone();
                    match state.tls.as_ref().map(|t| t.acceptor()) {
                        None => {
                            let (reader, writer) = stream.into_split();
                            let anonymous = herald_security::ANONYMOUS.to_string();
                            connections.spawn(async move {
                                serve_connection(reader, writer, peer, broker, state, anonymous).await;
                                drop(slot);
                            });
                        }
                        // The handshake runs in the connection's task, never in this loop.
                        Some(acceptor) => {
                            connections.spawn(async move {
                                serve_tls_connection(acceptor, stream, peer, broker, state).await;
                                drop(slot);
                            });
                        }
                    }
                }
                Err(e) => {
                    // Usually running out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "waiting for requests in flight to finish"
        );
    }
    while connections.join_next().await.is_some() {}
}

async fn retention_loop(broker: Broker, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config().retention_check_interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = ticker.tick() => {
                let b = broker.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || b.core.topics.apply_retention()).await {
                    tracing::error!(error = %e, "retention task failed");
                }
            }
        }
    }
}

/// Produce requests a connection may have written and not yet answered. librdkafka and
/// the Java client send up to 5 at a time (max.in.flight); more wait in the socket.
const MAX_PIPELINED: usize = 16;

/// A request being answered: its timer (the request metric) and its response.
type InFlight = (
    crate::telemetry::RequestTimer,
    Pin<Box<dyn Future<Output = Result<Option<BytesMut>, RequestError>> + Send>>,
);

/// A connection to the SSL listener: the TLS handshake, then the Kafka protocol over it.
async fn serve_tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    broker: Broker,
    state: Arc<Listener>,
) {
    match tls::handshake(&acceptor, stream).await {
        Ok(stream) => {
            // With client certificates (mutual TLS) the subject is the principal, unless
            // SASL on this listener authenticates someone.
            let principal = tls::client_principal(&stream)
                .unwrap_or_else(|| herald_security::ANONYMOUS.to_string());
            let (reader, writer) = tokio::io::split(stream);
            serve_connection(reader, writer, peer, broker, state, principal).await;
        }
        Err(HandshakeError::NotTls) => crate::telemetry::wrong_listener(
            peer,
            "plaintext",
            &format!(
                "a client at {peer} spoke plaintext to the SSL Kafka listener: configure it \
                 with security.protocol=SSL and the broker's CA (docs/security.md)"
            ),
        ),
        Err(e) => tracing::info!(%peer, error = %e, "TLS connection to the Kafka listener dropped"),
    }
}

/// Serves one connection. Requests are handled in order and answered in order, as Kafka
/// does; a produce is pipelined: once its batches are written (in request order), the
/// next request is read and started while the produce waits for its fsync, so that one
/// producer's in-flight requests share a group commit. Any other request first waits for
/// the produces before it to be answered.
async fn serve_connection<R, W>(
    reader: R,
    mut writer: W,
    peer: SocketAddr,
    broker: Broker,
    state: Arc<Listener>,
    mut principal: String,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let mut shutdown = broker.core.shutdown.clone();
    let max = broker.config().max_frame_bytes;
    tracing::debug!(%peer, "connection opened");
    let _connection = crate::telemetry::ConnectionGuard::open(peer);
    // Frames are read by their own task: reading the next request overlaps the wait for
    // the previous one, and a read is never cancelled half-way through a frame.
    let (frames_tx, mut frames) = mpsc::channel(1);
    tokio::spawn(read_frames(
        reader,
        max,
        broker.core.request_budget.clone(),
        peer,
        frames_tx,
    ));
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut closing = false;
    let mut sasl = state.sasl.as_ref().map(|_| SaslSession::Start);
    // Kafka's connections.max.idle.ms: no request and nothing in flight for this long
    // closes the connection (a request sent half-way counts as none).
    let max_idle = Duration::from_millis(broker.config().connections_max_idle_ms);
    let mut idle_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut shutdown), if !closing => {
                tracing::debug!(%peer, in_flight = in_flight.len(), "closing connection for shutdown");
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_since + max_idle),
                if !max_idle.is_zero() && in_flight.is_empty() && !closing =>
            {
                crate::telemetry::idle_connection_closed(peer);
                return;
            }
            response = next_response(&mut in_flight) => {
                if !send(&mut writer, peer, response).await {
                    return;
                }
                idle_since = tokio::time::Instant::now();
            }
            frame = frames.recv(), if !closing && in_flight.len() < MAX_PIPELINED => {
                // The frame's share of the request budget is held until it is handled.
                let Some((frame, _reservation)) = frame else {
                    // The client closed, or the reader logged why it stopped: answer what
                    // is in flight, then close.
                    if in_flight.is_empty() {
                        return;
                    }
                    closing = true;
                    continue;
                };
                idle_since = tokio::time::Instant::now();
                // A SASL listener: nothing but the authentication until it succeeds.
                let frame = match (&mut sasl, state.sasl.as_ref()) {
                    (Some(session), Some(config)) if !session.is_authenticated() => {
                        match session.before_auth(config, peer, frame) {
                            BeforeAuth::Serve(frame) => frame,
                            BeforeAuth::Answer(response) => {
                                if let Some(user) = session.principal() {
                                    tracing::debug!(%peer, principal = %user, "connection authenticated");
                                    principal = user;
                                }
                                if !send(&mut writer, peer, Ok(Some(response))).await {
                                    return;
                                }
                                continue;
                            }
                            BeforeAuth::Fail(response) => {
                                tokio::time::sleep(crate::FAILED_AUTHENTICATION_DELAY).await;
                                if !response.is_empty() {
                                    send(&mut writer, peer, Ok(Some(response))).await;
                                }
                                return;
                            }
                            BeforeAuth::Close(reason) => {
                                tracing::info!(%peer, %reason, "closing connection");
                                return;
                            }
                        }
                    }
                    _ => frame,
                };
                let timer = crate::telemetry::RequestTimer::start(&frame);
                let is_produce = frame.get(..2) == Some(&0i16.to_be_bytes()[..]);
                if !is_produce {
                    // Only produces overlap: anything else sees every earlier answer sent.
                    while !in_flight.is_empty() {
                        let response = next_response(&mut in_flight).await;
                        if !send(&mut writer, peer, response).await {
                            return;
                        }
                    }
                }
                match handlers::start_frame(&broker, &state, peer, &principal, frame).await {
                    Ok(Handled::Ready(response)) => {
                        if !send(&mut writer, peer, Ok(response)).await {
                            return;
                        }
                        drop(timer);
                        // A long poll counts from its answer.
                        idle_since = tokio::time::Instant::now();
                    }
                    Ok(Handled::Pending(pending)) => in_flight.push_back((timer, pending)),
                    Err(e) => {
                        // Earlier requests are answered first; this one closes the connection.
                        in_flight.push_back((timer, Box::pin(std::future::ready(Err(e)))));
                        closing = true;
                    }
                }
            }
        }
        if closing && in_flight.is_empty() {
            return;
        }
    }
}

/// The response of the oldest request in flight, once it is ready; never resolves when
/// nothing is in flight.
async fn next_response(
    in_flight: &mut VecDeque<InFlight>,
) -> Result<Option<BytesMut>, RequestError> {
    let Some((_, pending)) = in_flight.front_mut() else {
        return std::future::pending().await;
    };
    let response = pending.as_mut().await;
    // The timer is dropped (and the request counted) when the response is ready.
    in_flight.pop_front();
    response
}

/// Sends a response; `false` when the connection must close (logged).
async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    peer: SocketAddr,
    response: Result<Option<BytesMut>, RequestError>,
) -> bool {
    match response {
        Ok(Some(response)) => match frame::write_frame(writer, &response).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing connection: cannot send response");
                false
            }
        },
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection: bad request");
            false
        }
    }
}

/// Reads a connection's frames into `frames` until the client closes, a frame is bad, or
/// the connection task is gone.
async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    max: usize,
    budget: RequestBudget,
    peer: SocketAddr,
    frames: mpsc::Sender<(BytesMut, Option<Reservation>)>,
) {
    loop {
        let frame = tokio::select! {
            _ = frames.closed() => return,
            frame = frame::read_frame_within(&mut reader, max, Some(&budget)) => frame,
        };
        match frame {
            Ok(Some(frame)) => {
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                tracing::debug!(%peer, "connection closed by client");
                return;
            }
            Err(FrameError::Io(e)) => {
                tracing::info!(%peer, error = %e, "closing connection: socket error");
                return;
            }
            Err(FrameError::TlsHandshake) => {
                crate::telemetry::wrong_listener(
                    peer,
                    "TLS",
                    &format!(
                        "a client at {peer} started a TLS handshake on the plaintext Kafka \
                         listener; Herald has no TLS listener yet: configure the client with \
                         security.protocol=PLAINTEXT (docs/security.md)"
                    ),
                );
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        }
    }
}
