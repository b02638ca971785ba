//! Produce and consume with the embedded transport: no broker, one directory.
//!
//! ```text
//! cargo run -p herald --example produce_consume
//! ```
//!
//! A shop publishes orders; a "billing" consumer group issues invoices for them. One order
//! has a negative total: billing refuses it permanently, so it lands in the dead-letter
//! topic. After the "fix" (billing learns to issue credit notes), the dead letter is
//! replayed with its original id and handled.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use herald::{
    DeadLetterFilter, DeadLetterQueue, EmbeddedTransport, Envelope, Event, HandlerContext,
    HandlerError, MemoryInbox, ReplayTarget, RetryPolicy, Router,
    transport::{Admin, PublisherExt, TopicPartition, TopicReader},
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "shop.order.placed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

#[derive(Serialize, Deserialize, Debug)]
struct InvoiceIssued {
    order_id: String,
    total_cents: i64,
}

impl Event for InvoiceIssued {
    const TYPE: &'static str = "billing.invoice.issued";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let bus = EmbeddedTransport::open(dir.path())?;
    bus.create_topic("orders", 3).await?;
    println!("data directory: {}", dir.path().display());

    let credit_notes_supported = Arc::new(AtomicBool::new(false));
    let supported = credit_notes_supported.clone();
    let router = Router::builder(bus.clone(), "billing")
        .source("urn:shop:billing")
        .inbox(Arc::new(MemoryInbox::new()))
        .retry(RetryPolicy::default().with_max_attempts(3))
        .on("orders", move |order: OrderPlaced, ctx: HandlerContext| {
            let supported = supported.clone();
            async move {
                if order.total_cents < 0 && !supported.load(Ordering::SeqCst) {
                    return Err(HandlerError::permanent(format!(
                        "order {} has a negative total",
                        order.order_id
                    )));
                }
                let invoice = InvoiceIssued {
                    order_id: order.order_id,
                    total_cents: order.total_cents,
                };
                ctx.publish_event("invoices", &invoice).await?;
                println!(
                    "billing: invoiced {} ({} cents), attempt {}",
                    invoice.order_id,
                    invoice.total_cents,
                    ctx.attempt()
                );
                Ok(())
            }
        })
        .start()
        .await?;

    for (i, total) in [1250, 990, -300, 4200, 75].into_iter().enumerate() {
        let order = OrderPlaced {
            order_id: format!("order-{i}"),
            total_cents: total,
        };
        let at = bus
            .publish_envelope("orders", &Envelope::from_event("urn:shop:orders", &order)?)
            .await?;
        println!(
            "shop: placed {} -> partition {}, offset {}",
            order.order_id, at.partition, at.offset
        );
    }

    let dlq = DeadLetterQueue::new(bus.clone(), "orders", "billing");
    let letters = wait_for(|| async {
        dlq.list(&DeadLetterFilter::all())
            .await
            .map(|l| (!l.is_empty()).then_some(l))
    })
    .await?;
    for l in &letters {
        println!(
            "dead letter in {}: event {} after {} attempt(s): {}",
            dlq.topic(),
            l.event_id,
            l.failure.attempts,
            l.failure.reason
        );
    }

    credit_notes_supported.store(true, Ordering::SeqCst);
    let counts = dlq
        .replay(&DeadLetterFilter::all(), ReplayTarget::OwnGroup)
        .await?;
    println!("replayed {} dead letter(s)", counts.replayed);

    wait_for(|| async {
        let invoices = (0..bus.partitions("invoices").await?.unwrap_or(0))
            .map(|p| TopicPartition::new("invoices", p));
        let mut total = 0;
        for tp in invoices {
            total += bus.end_offset(&tp).await?;
        }
        Ok::<_, herald::transport::TransportError>((total == 5).then_some(()))
    })
    .await?;
    let stats = router.shutdown().await?;
    println!(
        "billing stopped: {} handled, {} dead-lettered, {} duplicates skipped",
        stats.handled, stats.dead_lettered, stats.duplicates
    );
    Ok(())
}

/// Polls `check` until it returns something.
async fn wait_for<T, E, F, Fut>(mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, E>>,
{
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
