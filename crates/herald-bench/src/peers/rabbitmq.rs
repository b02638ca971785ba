//! RabbitMQ through lapin (AMQP 0.9.1), publisher confirms on, in one of two layouts:
//!
//! - [`Layout::DurableQueues`]: a durable fanout exchange per benchmark stream and one
//!   durable classic queue per group bound to it; messages are persistent
//!   (`delivery_mode 2`). RabbitMQ confirms a persistent message routed to a durable
//!   queue once it is written and fsynced: the matched-durability mode.
//! - [`Layout::Stream`]: one stream queue (`x-queue-type: stream`) per benchmark stream;
//!   every group is a consumer reading it from `first`. Stream queues confirm once the
//!   write reached the operating system, without fsync (they rely on replication).
//!
//! Producers keep up to [`CONFIRM_WINDOW`] confirms outstanding; consumers take up to
//! [`PREFETCH`] unacknowledged deliveries and acknowledge each poll with `multiple`.

use std::{collections::VecDeque, time::Duration};

use futures_util::{FutureExt, StreamExt};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::runtime::Runtime;

use crate::{
    BenchError, Result,
    peers::runtime,
    target::{Consumer, Producer, Profile, Target},
};

/// Confirms a producer waits for at most at once.
pub const CONFIRM_WINDOW: usize = 1024;
/// Unacknowledged deliveries a consumer may hold.
pub const PREFETCH: u16 = 1000;

fn amqp_error(op: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::client("rabbitmq", op, e)
}

/// How a benchmark stream maps onto RabbitMQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Fanout exchange, one durable classic queue per group, persistent messages.
    DurableQueues,
    /// One stream queue, consumers from `first`.
    Stream,
}

/// RabbitMQ on one server, in one layout.
pub struct RabbitMq {
    runtime: Runtime,
    url: String,
    admin: Channel,
    _connection: Connection,
    layout: Layout,
    version: String,
}

impl RabbitMq {
    /// Connects to `url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub fn connect(url: &str, layout: Layout) -> Result<Self> {
        let runtime = runtime("rabbitmq")?;
        let (connection, admin) = runtime.block_on(async {
            let connection = Connection::connect(url, ConnectionProperties::default())
                .await
                .map_err(|e| amqp_error(&format!("connect {url}"), e))?;
            let admin = connection
                .create_channel()
                .await
                .map_err(|e| amqp_error("open channel", e))?;
            Ok::<_, BenchError>((connection, admin))
        })?;
        // lapin does not expose the server's properties; ask the local rabbitmqctl.
        let version = crate::child::find_program("HERALD_BENCH_RABBITMQCTL", "rabbitmqctl")
            .and_then(|ctl| crate::child::version(&ctl, "version"))
            .unwrap_or_else(|| "(version unknown)".into());
        Ok(Self {
            runtime,
            url: url.to_string(),
            admin,
            _connection: connection,
            layout,
            version,
        })
    }

    fn queue(&self, stream: &str, group: &str) -> String {
        match self.layout {
            Layout::DurableQueues => format!("{stream}.{group}"),
            Layout::Stream => stream.to_string(),
        }
    }

    async fn channel(&self) -> Result<(Connection, Channel)> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .map_err(|e| amqp_error("connect", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("open channel", e))?;
        Ok((connection, channel))
    }
}

impl Target for RabbitMq {
    fn name(&self) -> String {
        match self.layout {
            Layout::DurableQueues => "rabbitmq (durable queue, confirms)".into(),
            Layout::Stream => "rabbitmq (stream queue, confirms)".into(),
        }
    }

    fn settings(&self) -> String {
        let layout = match self.layout {
            Layout::DurableQueues => {
                "durable fanout exchange, one durable classic queue per group, persistent \
                 messages (fsync before confirm)"
            }
            Layout::Stream => "stream queue (no fsync before confirm), consumers from first",
        };
        format!(
            "RabbitMQ {}, {layout}; lapin, publisher confirms, {CONFIRM_WINDOW} outstanding per \
             producer; prefetch {PREFETCH}, ack multiple per poll",
            self.version
        )
    }

    fn fsync_before_ack(&self) -> bool {
        self.layout == Layout::DurableQueues
    }

    fn create_stream(&self, stream: &str, groups: &[String]) -> Result<()> {
        self.delete_stream(stream)?;
        self.runtime.block_on(async {
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            match self.layout {
                Layout::Stream => {
                    let mut args = FieldTable::default();
                    args.insert(
                        "x-queue-type".into(),
                        AMQPValue::LongString("stream".into()),
                    );
                    self.admin
                        .queue_declare(stream.into(), durable, args)
                        .await
                        .map_err(|e| amqp_error("declare stream queue", e))?;
                }
                Layout::DurableQueues => {
                    self.admin
                        .exchange_declare(
                            stream.into(),
                            ExchangeKind::Fanout,
                            ExchangeDeclareOptions {
                                durable: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .map_err(|e| amqp_error("declare exchange", e))?;
                    for group in groups {
                        let queue = self.queue(stream, group);
                        self.admin
                            .queue_declare(queue.as_str().into(), durable, FieldTable::default())
                            .await
                            .map_err(|e| amqp_error("declare queue", e))?;
                        self.admin
                            .queue_bind(
                                queue.as_str().into(),
                                stream.into(),
                                "".into(),
                                QueueBindOptions::default(),
                                FieldTable::default(),
                            )
                            .await
                            .map_err(|e| amqp_error("bind queue", e))?;
                    }
                }
            }
            Ok(())
        })
    }

    fn delete_stream(&self, stream: &str) -> Result<()> {
        self.runtime.block_on(async {
            // A throwaway channel: deleting what does not exist may close the channel
            // (RabbitMQ versions differ), which must not take the admin channel along.
            let (_connection, channel) = self.channel().await?;
            let mut queues = vec![stream.to_string()];
            queues.extend((0..crate::peers::MAX_GROUPS).map(|g| format!("{stream}.g{g}")));
            for queue in queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = channel
                .exchange_delete(stream.into(), ExchangeDeleteOptions::default())
                .await;
            Ok(())
        })
    }

    fn producer(&self, stream: &str, _profile: Profile) -> Result<Box<dyn Producer>> {
        let (connection, channel) = self.runtime.block_on(async {
            let (connection, channel) = self.channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| amqp_error("confirm.select", e))?;
            Ok::<_, BenchError>((connection, channel))
        })?;
        let (exchange, routing_key) = match self.layout {
            Layout::DurableQueues => (stream.to_string(), String::new()),
            Layout::Stream => (String::new(), stream.to_string()),
        };
        Ok(Box::new(RabbitProducer {
            runtime: self.runtime.handle().clone(),
            _connection: connection,
            channel,
            exchange,
            routing_key,
            persistent: self.layout == Layout::DurableQueues,
            window: VecDeque::new(),
            acked: 0,
        }))
    }

    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let queue = self.queue(stream, group);
        let layout = self.layout;
        let (connection, channel, consumer) = self.runtime.block_on(async {
            let (connection, channel) = self.channel().await?;
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
                .await
                .map_err(|e| amqp_error("basic.qos", e))?;
            let mut args = FieldTable::default();
            if layout == Layout::Stream {
                args.insert(
                    "x-stream-offset".into(),
                    AMQPValue::LongString("first".into()),
                );
            }
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    group.into(),
                    BasicConsumeOptions::default(),
                    args,
                )
                .await
                .map_err(|e| amqp_error("basic.consume", e))?;
            Ok::<_, BenchError>((connection, channel, consumer))
        })?;
        Ok(Box::new(RabbitConsumer {
            runtime: self.runtime.handle().clone(),
            _connection: connection,
            _channel: channel,
            consumer,
        }))
    }
}

struct RabbitProducer {
    runtime: tokio::runtime::Handle,
    _connection: Connection,
    channel: Channel,
    exchange: String,
    routing_key: String,
    persistent: bool,
    window: VecDeque<PublisherConfirm>,
    acked: u64,
}

impl RabbitProducer {
    async fn settle_oldest(&mut self) -> Result<()> {
        if let Some(confirm) = self.window.pop_front() {
            let confirmation = confirm.await.map_err(|e| amqp_error("confirm", e))?;
            if confirmation.is_nack() {
                return Err(amqp_error("confirm", "message nacked by the broker"));
            }
            self.acked += 1;
        }
        Ok(())
    }
}

impl Producer for RabbitProducer {
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            for payload in payloads {
                while self.window.len() >= CONFIRM_WINDOW {
                    self.settle_oldest().await?;
                }
                let mut properties = BasicProperties::default();
                if self.persistent {
                    properties = properties.with_delivery_mode(2);
                }
                let confirm = self
                    .channel
                    .basic_publish(
                        self.exchange.as_str().into(),
                        self.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties,
                    )
                    .await
                    .map_err(|e| amqp_error("basic.publish", e))?;
                self.window.push_back(confirm);
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<u64> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            while !self.window.is_empty() {
                self.settle_oldest().await?;
            }
            Ok(self.acked)
        })
    }
}

struct RabbitConsumer {
    runtime: tokio::runtime::Handle,
    _connection: Connection,
    _channel: Channel,
    consumer: lapin::Consumer,
}

impl Consumer for RabbitConsumer {
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            let mut next = match tokio::time::timeout(max_wait, self.consumer.next()).await {
                Ok(item) => item,
                Err(_) => return Ok(0),
            };
            let mut n = 0;
            let mut last = None;
            loop {
                match next {
                    None => break,
                    Some(Err(e)) => return Err(amqp_error("deliver", e)),
                    Some(Ok(delivery)) => {
                        on_message(&delivery.data);
                        n += 1;
                        last = Some(delivery);
                    }
                }
                if n >= usize::from(PREFETCH) {
                    break;
                }
                match self.consumer.next().now_or_never() {
                    Some(item) => next = item,
                    None => break,
                }
            }
            if let Some(delivery) = last {
                delivery
                    .acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .map_err(|e| amqp_error("basic.ack", e))?;
            }
            Ok(n)
        })
    }
}
