//! `GET /metrics`: sets the scrape-time gauges (partition offsets and sizes, consumer
//! group offsets and lag, open connections) and renders every metric.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::{AppState, groups::all_lags};
use crate::telemetry::{self, GroupLag, PartitionState};

/// Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`
pub(crate) async fn scrape(State(shared): State<AppState>) -> Response {
    // While starting or stopping there is no broker state to report, but the counters
    // are still worth a scrape.
    if let Ok(broker) = shared.broker() {
        let refreshed = tokio::task::spawn_blocking(move || {
            for topic in broker.topics().list() {
                for p in topic.partitions() {
                    let (Ok((log_start_offset, high_watermark)), Ok(size_bytes)) =
                        (p.offsets(), p.size_bytes())
                    else {
                        continue;
                    };
                    PartitionState {
                        topic: topic.name(),
                        partition: p.index(),
                        log_start_offset,
                        high_watermark,
                        size_bytes,
                    }
                    .emit();
                }
            }
            for (group, lag) in all_lags(&broker, None) {
                let (Some(lag_messages), Some(lag_seconds)) = (lag.lag_messages, lag.lag_seconds)
                else {
                    continue;
                };
                GroupLag {
                    group: &group,
                    topic: &lag.topic,
                    partition: lag.partition,
                    committed_offset: lag.committed_offset,
                    lag_messages,
                    lag_seconds,
                }
                .emit();
            }
        })
        .await;
        if let Err(e) = refreshed {
            tracing::error!(error = %e, "refreshing metrics failed");
        }
    }
    telemetry::refresh_connection_gauge();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], telemetry::render()).into_response()
}
