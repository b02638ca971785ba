//! Starting and stopping the broker: the Kafka listener, one task per connection, the
//! retention timer, and a graceful shutdown that lets requests in flight finish before
//! the logs are closed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};

use crate::{
    broker::{Broker, Core},
    config::BrokerConfig,
    error::BrokerError,
    frame::{self, FrameError},
    handlers,
};

/// A running broker. Dropping it without [`shutdown`](Self::shutdown) stops the tasks
/// and closes the logs on a best-effort basis.
#[derive(Debug)]
pub struct BrokerHandle {
    broker: Broker,
    kafka_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    acceptor: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
}

impl Broker {
    /// Opens the data directory, binds the Kafka listener and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
        let listener = TcpListener::bind(config.kafka_listen)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: config.kafka_listen,
                source,
            })?;
        let kafka_addr = listener.local_addr().map_err(|source| BrokerError::Bind {
            addr: config.kafka_listen,
            source,
        })?;
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
        tracing::info!(
            %kafka_addr,
            data_dir = %broker.config().data_dir.display(),
            topics = broker.topics().list().len(),
            "herald broker listening"
        );
        let acceptor = tokio::spawn(accept_loop(listener, broker.clone(), shutdown_rx.clone()));
        let retention = tokio::spawn(retention_loop(broker.clone(), shutdown_rx));
        Ok(BrokerHandle {
            broker,
            kafka_addr,
            shutdown_tx,
            acceptor: Some(acceptor),
            retention: Some(retention),
        })
    }
}

impl BrokerHandle {
    /// The address the Kafka listener is bound to (with the real port when port 0 was
    /// asked for).
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addr
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
        tracing::info!(kafka_addr = %self.kafka_addr, "herald broker stopped");
        result
    }

    async fn stop_tasks(&mut self) -> Result<(), BrokerError> {
        let _ = self.shutdown_tx.send(true);
        // Rebalances can wait for minutes: the coordinator answers its waiting JoinGroup
        // and SyncGroup requests at once, so that the connections can finish.
        self.broker.core.groups.shutdown().await;
        for task in [self.acceptor.take(), self.retention.take()]
            .into_iter()
            .flatten()
        {
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

async fn accept_loop(listener: TcpListener, broker: Broker, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, peer, broker.clone()));
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

/// Serves one connection: requests are handled one at a time, in order, as Kafka does
/// (a client may pipeline; the responses come back in request order).
async fn serve_connection(stream: TcpStream, peer: SocketAddr, broker: Broker) {
    let (mut reader, mut writer) = stream.into_split();
    let mut shutdown = broker.core.shutdown.clone();
    let max = broker.config().max_frame_bytes;
    tracing::debug!(%peer, "connection opened");
    let _connection = crate::telemetry::ConnectionGuard::open(peer);
    loop {
        let frame = tokio::select! {
            _ = stopped(&mut shutdown) => {
                tracing::debug!(%peer, "closing connection for shutdown");
                return;
            }
            frame = frame::read_frame(&mut reader, max) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                tracing::debug!(%peer, "connection closed by client");
                return;
            }
            Err(FrameError::Io(e)) => {
                tracing::info!(%peer, error = %e, "closing connection: socket error");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        let _timer = crate::telemetry::RequestTimer::start(&frame);
        match handlers::handle_frame(&broker, peer, frame).await {
            Ok(Some(response)) => {
                if let Err(e) = frame::write_frame(&mut writer, &response).await {
                    tracing::info!(%peer, error = %e, "closing connection: cannot send response");
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request");
                return;
            }
        }
    }
}
