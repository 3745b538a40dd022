//! `GET /api/v1/events`: the LwM2M service's live [`DeviceEvent`]s as server-sent events
//! (registered, updated, deregistered, expired, removed, registration_refused, notification,
//! observation_ended, send, operation_queued, operation_completed) and the store's committed
//! lifecycle transitions (state_changed), optionally for one endpoint.
//!
//! Each message's `event:` is the event's kind and its `data:` the event as JSON (the same
//! `event` tag inside). A listener that falls too far behind gets an `event: lagged` message
//! saying how many events it missed, and the stream goes on; a comment line every 15 s keeps
//! proxies from closing an idle stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::routes;

use super::extract::QueryParams;
use super::lwm2m::OpRouteError;
use super::{AppState, Routes};
use crate::accounts::Role;
use crate::lwm2m::{DeviceEvent, ServiceError};
use crate::store::StateChange;

/// How often an idle stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Vec<Routes> {
    vec![Routes::role(Role::FieldService).routes(routes!(events))]
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events about this endpoint.
    pub endpoint: Option<String>,
}

/// The SSE name of an event: its serde tag.
fn event_name(event: &DeviceEvent) -> &'static str {
    match event {
        DeviceEvent::Registered { .. } => "registered",
        DeviceEvent::Updated { .. } => "updated",
        DeviceEvent::Deregistered { .. } => "deregistered",
        DeviceEvent::Expired { .. } => "expired",
        DeviceEvent::Removed { .. } => "removed",
        DeviceEvent::RegistrationRefused { .. } => "registration_refused",
        DeviceEvent::Notification { .. } => "notification",
        DeviceEvent::ObservationEnded { .. } => "observation_ended",
        DeviceEvent::Send { .. } => "send",
        DeviceEvent::OperationQueued { .. } => "operation_queued",
        DeviceEvent::OperationCompleted { .. } => "operation_completed",
        DeviceEvent::StateChanged { .. } => "state_changed",
    }
}

fn sse_event(event: &DeviceEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|error| {
        tracing::error!(%error, "an event could not be serialized");
        "{}".to_owned()
    });
    Event::default().event(event_name(event)).data(data)
}

/// One source of the stream: a broadcast receiver whose items become [`DeviceEvent`]s.
fn source<T>(
    receiver: broadcast::Receiver<T>,
) -> impl Stream<Item = Result<DeviceEvent, u64>> + Send + 'static
where
    T: Clone + Send + 'static,
    DeviceEvent: From<T>,
{
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(item) => Some((Ok(DeviceEvent::from(item)), receiver)),
            Err(RecvError::Lagged(missed)) => Some((Err(missed), receiver)),
            Err(RecvError::Closed) => None,
        }
    })
}

/// The stream of SSE messages from `events` (the LwM2M service's) and `state_changes` (the
/// store's), filtered to `endpoint` if given. Ends only when the service stops (its broadcast
/// closes); a lag of either source is reported as `event: lagged`.
pub fn event_stream(
    events: broadcast::Receiver<DeviceEvent>,
    state_changes: broadcast::Receiver<StateChange>,
    endpoint: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    // The service's stream decides the end: the store's never closes while the server runs.
    let service = source(events)
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    let store = source(state_changes).map(Some);
    futures_util::stream::select(service, store)
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(move |item| {
            let message = match item {
                Some(Ok(event)) => {
                    if endpoint
                        .as_deref()
                        .is_some_and(|wanted| event.endpoint() != Some(wanted))
                    {
                        None
                    } else {
                        Some(Ok(sse_event(&event)))
                    }
                }
                Some(Err(missed)) => {
                    let data = serde_json::json!({ "event": "lagged", "missed": missed });
                    Some(Ok(Event::default().event("lagged").data(data.to_string())))
                }
                None => None,
            };
            std::future::ready(message)
        })
}

/// Live device events as server-sent events (`text/event-stream`).
#[utoipa::path(get, path = "/events", tag = "events",
    params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream",
        description = "One message per event: `event:` its kind, `data:` the event as JSON; `event: lagged` with `{\"missed\": n}` when the listener fell behind"),
        (status = 503, description = "The LwM2M service is not running")))]
async fn events(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, OpRouteError> {
    let service = state
        .lwm2m
        .as_ref()
        .ok_or(OpRouteError::Service(ServiceError::Unavailable))?;
    let stream = event_stream(
        service.events(),
        state.store.state_changes(),
        query.endpoint,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn expired(endpoint: &str) -> DeviceEvent {
        DeviceEvent::Expired {
            endpoint: endpoint.into(),
            registration_id: "r1".into(),
            at: Utc::now(),
        }
    }

    /// The wire text of an SSE event (axum renders it when the response body is polled).
    async fn text(event: Event) -> String {
        let body = Sse::new(futures_util::stream::iter([Ok::<_, Infallible>(event)]));
        let response = axum::response::IntoResponse::into_response(body);
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn events_are_filtered_and_a_lag_is_reported_not_fatal() {
        let (tx, rx) = broadcast::channel(2);
        let (_changes, changes_rx) = broadcast::channel(2);
        let mut stream = Box::pin(event_stream(rx, changes_rx, Some("meter-1".into())));
        // Four events into a channel of two: the receiver lags by two.
        tx.send(expired("meter-2")).unwrap();
        tx.send(expired("meter-1")).unwrap();
        tx.send(expired("meter-2")).unwrap();
        tx.send(expired("meter-1")).unwrap();
        let lagged = text(stream.next().await.unwrap().unwrap()).await;
        assert!(lagged.starts_with("event: lagged\n"), "{lagged}");
        assert!(lagged.contains(r#""missed":2"#), "{lagged}");
        // The meter-2 event is filtered out; meter-1's comes through as JSON.
        let next = text(stream.next().await.unwrap().unwrap()).await;
        assert!(next.starts_with("event: expired\n"), "{next}");
        assert!(next.contains(r#""endpoint":"meter-1""#), "{next}");
        drop(tx);
        assert!(
            stream.next().await.is_none(),
            "the stream ends with the service, though the store's source is still open"
        );
    }

    #[tokio::test]
    async fn lifecycle_changes_from_the_store_are_state_changed_events() {
        let (_tx, rx) = broadcast::channel::<DeviceEvent>(4);
        let (changes, changes_rx) = broadcast::channel(4);
        let mut stream = Box::pin(event_stream(rx, changes_rx, Some("meter-1".into())));
        let change = |endpoint: &str| StateChange {
            endpoint: endpoint.into(),
            from: crate::fleet::lifecycle::LifecycleState::Active,
            to: crate::fleet::lifecycle::LifecycleState::Suspended,
            actor: "user:alice".into(),
            reason: Some("meter swap".into()),
            at: Utc::now(),
        };
        changes.send(change("meter-2")).unwrap();
        changes.send(change("meter-1")).unwrap();
        let text = text(stream.next().await.unwrap().unwrap()).await;
        assert!(text.starts_with("event: state_changed\n"), "{text}");
        for part in [
            r#""endpoint":"meter-1""#,
            r#""from":"active""#,
            r#""to":"suspended""#,
            r#""actor":"user:alice""#,
            r#""reason":"meter swap""#,
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }
}
