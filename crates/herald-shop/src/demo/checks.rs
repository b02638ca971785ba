//! The invariants a demo run must end with. Each [`Check`] says what it compares, so a
//! failed one explains itself.

use std::collections::{BTreeMap, BTreeSet};

use herald::{
    DeadLetterFilter, DeadLetterQueue, Envelope,
    transport::{TopicPartition, TopicReader, Transport},
};

use super::{OrderKind, PlacedOrder};
use crate::{
    ShopError,
    events::{ORDERS, TOPICS},
    inventory::StockBook,
    order::OrderBook,
    payment::PaymentBook,
    reactions::Reactions,
};

/// One invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What must hold.
    pub name: &'static str,
    /// Whether it did.
    pub ok: bool,
    /// The numbers compared.
    pub detail: String,
}

fn check(name: &'static str, ok: bool, detail: String) -> Check {
    Check { name, ok, detail }
}

/// What the services' databases say after the run.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// The order service.
    pub orders: OrderBook,
    /// Orders by id: status.
    pub statuses: BTreeMap<String, String>,
    /// The inventory.
    pub stock: StockBook,
    /// Units of the limited edition stocked initially.
    pub limited_stock: i64,
    /// Payments.
    pub payments: PaymentBook,
    /// Shipments and units shipped.
    pub shipped: (i64, i64),
    /// Emails, analytics, loyalty.
    pub reactions: Reactions,
    /// Order sagas by status.
    pub sagas: herald_saga::StatusCounts,
}

/// The invariants over the books and the orders placed.
pub(crate) fn books(placed: &[PlacedOrder], b: &Books) -> Vec<Check> {
    let n = placed.len() as i64;
    let (completed, cancelled) = (b.orders.completed, b.orders.cancelled);
    let must = |kind: OrderKind, status: &str| {
        placed
            .iter()
            .filter(|p| p.kind == kind)
            .filter(|p| b.statuses.get(&p.placed.order_id).map(String::as_str) != Some(status))
            .count()
    };
    let limited_completed = placed
        .iter()
        .filter(|p| p.kind == OrderKind::Limited)
        .filter(|p| b.statuses.get(&p.placed.order_id).map(String::as_str) == Some("completed"))
        .count() as i64;
    let wrong = must(OrderKind::Normal, "completed")
        + must(OrderKind::Declined, "cancelled")
        + must(OrderKind::Unshippable, "cancelled");
    vec![
        check(
            "every order is completed or cancelled",
            b.orders.open == 0 && completed + cancelled == n && b.statuses.len() as i64 == n,
            format!(
                "{n} placed = {completed} completed + {cancelled} cancelled, {} open",
                b.orders.open
            ),
        ),
        check(
            "each order ended as its failure says",
            wrong == 0 && limited_completed <= b.limited_stock,
            format!(
                "{wrong} orders ended otherwise; {limited_completed} limited-edition orders completed \
                 of {} in stock",
                b.limited_stock
            ),
        ),
        check(
            "every saga ended, none stuck or failed",
            b.sagas.completed as i64 == completed
                && b.sagas.compensated as i64 == cancelled
                && b.sagas.active() == 0
                && b.sagas.failed == 0,
            format!(
                "sagas: {} completed, {} compensated, {} running, {} failed",
                b.sagas.completed,
                b.sagas.compensated,
                b.sagas.active(),
                b.sagas.failed
            ),
        ),
        check(
            "stock balances: reserved - released = shipped",
            b.stock.reserved - b.stock.released == b.shipped.1
                && b.stock.initial - b.stock.on_hand == b.stock.reserved - b.stock.released,
            format!(
                "{} reserved - {} released = {} shipped; {} stocked - {} on hand",
                b.stock.reserved, b.stock.released, b.shipped.1, b.stock.initial, b.stock.on_hand
            ),
        ),
        check(
            "payments balance: charged - refunded = completed orders' totals",
            b.payments.charged_cents - b.payments.refunded_cents == b.orders.completed_cents,
            format!(
                "{} - {} = {} cents",
                b.payments.charged_cents, b.payments.refunded_cents, b.orders.completed_cents
            ),
        ),
        check(
            "every order got its emails, once",
            b.reactions.emails("confirmation") == n
                && b.reactions.emails("shipped") == completed
                && b.reactions.emails("cancelled") == cancelled,
            format!(
                "{} confirmations, {} shipping notices, {} cancellations",
                b.reactions.emails("confirmation"),
                b.reactions.emails("shipped"),
                b.reactions.emails("cancelled")
            ),
        ),
        check(
            "analytics counted every event once",
            b.reactions.counted("placed") == n
                && b.reactions.counted("completed") == completed
                && b.reactions.counted("cancelled") == cancelled,
            format!(
                "placed {}, completed {}, cancelled {}",
                b.reactions.counted("placed"),
                b.reactions.counted("completed"),
                b.reactions.counted("cancelled")
            ),
        ),
        check(
            "loyalty awarded every completed order once",
            b.reactions.awards == completed && b.reactions.points == b.reactions.awarded_points,
            format!(
                "{} awards for {completed} completed orders; {} points held, {} awarded",
                b.reactions.awards, b.reactions.points, b.reactions.awarded_points
            ),
        ),
    ]
}

/// The dead letters of every group of the shop: `(dead-letter topic, event id)`.
pub(crate) async fn dead_letters<T: Transport>(
    transport: &T,
) -> Result<Vec<(String, String, String)>, ShopError> {
    let mut letters = Vec::new();
    for (group, topics) in super::groups() {
        for topic in topics {
            let dlq = DeadLetterQueue::new(transport.clone(), topic, group);
            let found = dlq
                .list(&DeadLetterFilter::all())
                .await
                .map_err(|e| ShopError::Other(e.to_string()))?;
            for letter in found {
                letters.push((
                    dlq.topic().to_owned(),
                    letter.event_id,
                    letter.failure.reason,
                ));
            }
        }
    }
    Ok(letters)
}

/// Dead letters: exactly the poison message, once in each group that handles placed
/// orders (notification, analytics), and nothing else anywhere.
pub(crate) fn dead_letter_check(
    letters: &[(String, String, String)],
    poison_id: Option<&str>,
) -> Check {
    let expected: BTreeSet<String> = match poison_id {
        Some(_) => ["notification", "analytics"]
            .iter()
            .map(|g| herald::dlq::dlq_topic(ORDERS, g))
            .collect(),
        None => BTreeSet::new(),
    };
    let topics: BTreeSet<String> = letters.iter().map(|l| l.0.clone()).collect();
    let only_poison = letters.iter().all(|l| Some(l.1.as_str()) == poison_id);
    check(
        "the dead-letter topics hold exactly the poison message",
        only_poison && letters.len() == expected.len() && topics == expected,
        format!(
            "{} dead letters in {}",
            letters.len(),
            if topics.is_empty() {
                "no topic".to_owned()
            } else {
                topics.into_iter().collect::<Vec<_>>().join(", ")
            }
        ),
    )
}

/// Reads every record of the shop's topics: `(topic, envelope)`; records that are not
/// CloudEvents (none should be) are skipped.
pub(crate) async fn all_events<T: TopicReader>(
    transport: &T,
) -> Result<Vec<(String, Envelope)>, ShopError> {
    let mut events = Vec::new();
    for topic in TOPICS {
        let Some(partitions) = transport.partitions(topic).await? else {
            continue;
        };
        for p in 0..partitions {
            let tp = TopicPartition::new(topic, p);
            let mut offset = transport.start_offset(&tp).await?;
            let end = transport.end_offset(&tp).await?;
            while offset < end {
                let records = transport.read(&tp, offset, 1000).await?;
                let Some(last) = records.last() else { break };
                offset = last.offset + 1;
                events.extend(
                    records
                        .iter()
                        .filter_map(|r| Envelope::from_record(r).ok())
                        .map(|e| (topic.to_owned(), e)),
                );
            }
        }
    }
    Ok(events)
}

/// Correlation end to end: every event and command about an order carries the
/// correlation id its `POST /orders` answer gave, and its flow holds the placed event,
/// the saga's commands and replies, and its final event.
pub(crate) fn correlation_check(placed: &[PlacedOrder], events: &[(String, Envelope)]) -> Check {
    let mut by_correlation: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut stray = 0;
    for (_, e) in events {
        let Some(key) = e.key_str() else { continue };
        if !key.starts_with("order-") {
            continue;
        }
        match e.correlation_id.as_deref() {
            Some(c) => {
                by_correlation
                    .entry(c)
                    .or_default()
                    .insert(e.event_type.as_str());
            }
            None => stray += 1,
        }
    }
    let mut incomplete = 0;
    for p in placed {
        let types = by_correlation
            .get(p.placed.correlation_id.as_str())
            .cloned()
            .unwrap_or_default();
        let has_end =
            types.contains("shop.order.completed") || types.contains("shop.order.cancelled");
        if !(types.contains("shop.order.placed")
            && types.contains("shop.inventory.reserve")
            && has_end)
        {
            incomplete += 1;
        }
    }
    let flows = by_correlation.len();
    check(
        "correlation ids carried end to end",
        stray == 0 && incomplete == 0 && flows == placed.len(),
        format!(
            "{flows} correlation ids for {} orders; {incomplete} flows incomplete, {stray} events without one",
            placed.len()
        ),
    )
}
