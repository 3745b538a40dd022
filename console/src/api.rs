//! The console's only way to the server: every HTTP call of `/api/v1` (fetch with the session
//! cookie, the CSRF token on state-changing methods, JSON in and out) and the live event stream
//! (server-sent events). A 401 on any call but the login itself calls the session-expired hook,
//! which sends the operator back to the login page.

use std::cell::RefCell;
use std::collections::HashMap;

use api_types::diagnostics::{
    DiagnoseRequest, DiagnosisHistory, DiagnosisRun, Sweep, SweepRequest, SweepResults,
};
use api_types::lwm2m::{
    CancelResponse, DoneResponse, ExecuteRequest, ObserveRequest, ObserveResponse, PendingResponse,
    ReadRequest, ReadResponse, RegistrationOut, WriteRequest,
};
use api_types::{
    AuditPage, Device, DevicePage, DeviceSummary, ImportReport, LifecycleChange, LoginRequest, Me,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;

use crate::format::{self, percent_encode};

const BASE: &str = "/api/v1";

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No valid session (401): the session-expired hook has run.
    Unauthorized,
    /// The server answered with an error status; `error`/`message` from its JSON body.
    Http {
        status: u16,
        error: String,
        message: String,
        coap_code: Option<String>,
    },
    /// The server could not be reached.
    Network(String),
    /// The answer was not what this console expects (a version mismatch).
    Decode(String),
}

impl ApiError {
    /// The error in plain language, for an operator.
    pub fn plain(&self) -> String {
        match self {
            ApiError::Unauthorized => "Your session has expired".to_owned(),
            ApiError::Http {
                status,
                error,
                message,
                coap_code,
            } => format::plain_error(*status, error, message, coap_code.as_deref()),
            ApiError::Network(_) => {
                "The server could not be reached; check the connection and try again".to_owned()
            }
            ApiError::Decode(why) => format!("The server's answer was not understood ({why})"),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized => Some(401),
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The error fields every error body of the API has (`ErrorBody`, `DeviceErrorBody`).
#[derive(serde::Deserialize)]
struct AnyErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    coap_code: Option<String>,
}

/// The error of a non-success answer.
fn http_error(status: u16, text: &str) -> ApiError {
    let body = serde_json::from_str::<AnyErrorBody>(text).unwrap_or(AnyErrorBody {
        error: String::new(),
        message: text.chars().take(200).collect(),
        coap_code: None,
    });
    ApiError::Http {
        status,
        error: body.error,
        message: body.message,
        coap_code: body.coap_code,
    }
}

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
    static ON_UNAUTHORIZED: RefCell<Option<Box<dyn Fn()>>> = RefCell::new(None);
}

/// Keeps the CSRF token of the session (from the login answer or `/me`).
pub fn set_csrf(token: Option<String>) {
    CSRF.with(|c| *c.borrow_mut() = token);
}

/// What to do when a call finds the session gone.
pub fn on_unauthorized(hook: impl Fn() + 'static) {
    ON_UNAUTHORIZED.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

fn unauthorized() -> ApiError {
    set_csrf(None);
    ON_UNAUTHORIZED.with(|h| {
        if let Some(hook) = h.borrow().as_ref() {
            hook();
        }
    });
    ApiError::Unauthorized
}

enum Body {
    None,
    Json(String),
    Csv(String),
}

/// One HTTP exchange: the status and the body text.
async fn exchange(method: &str, path: &str, body: Body) -> Result<(u16, String), ApiError> {
    let network = |e: wasm_bindgen::JsValue| ApiError::Network(format!("{e:?}"));
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(network)?;
    headers.set("Accept", "application/json").map_err(network)?;
    match &body {
        Body::None => {}
        Body::Json(text) => {
            headers
                .set("Content-Type", "application/json")
                .map_err(network)?;
            init.set_body(&wasm_bindgen::JsValue::from_str(text));
        }
        Body::Csv(text) => {
            headers.set("Content-Type", "text/csv").map_err(network)?;
            init.set_body(&wasm_bindgen::JsValue::from_str(text));
        }
    }
    if method != "GET"
        && let Some(token) = CSRF.with(|c| c.borrow().clone())
    {
        headers.set("X-CSRF-Token", &token).map_err(network)?;
    }
    init.set_headers(&headers);
    let url = format!("{BASE}{path}");
    let request = web_sys::Request::new_with_str_and_init(&url, &init).map_err(network)?;
    let window = web_sys::window().ok_or_else(|| ApiError::Network("no window".into()))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(network)?
        .dyn_into()
        .map_err(network)?;
    let status = response.status();
    let text = JsFuture::from(response.text().map_err(network)?)
        .await
        .map_err(network)?
        .as_string()
        .unwrap_or_default();
    Ok((status, text))
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Decode(e.to_string()))
}

/// A call whose success answer is JSON `T`; 401 runs the session-expired hook.
async fn call<T: DeserializeOwned>(method: &str, path: &str, body: Body) -> Result<T, ApiError> {
    let (status, text) = exchange(method, path, body).await?;
    match status {
        200..=299 => decode(&text),
        401 => Err(unauthorized()),
        _ => Err(http_error(status, &text)),
    }
}

fn json<B: Serialize>(body: &B) -> Result<Body, ApiError> {
    serde_json::to_string(body)
        .map(Body::Json)
        .map_err(|e| ApiError::Decode(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// Logs in; a wrong password is `Http { status: 401 }` (not a session expiry).
pub async fn login(username: &str, password: &str) -> Result<Me, ApiError> {
    let body = json(&LoginRequest {
        username: username.to_owned(),
        password: password.to_owned(),
    })?;
    let (status, text) = exchange("POST", "/auth/login", body).await?;
    match status {
        200 => {
            let me: Me = decode(&text)?;
            set_csrf(me.csrf_token.clone());
            Ok(me)
        }
        _ => Err(http_error(status, &text)),
    }
}

/// Who is signed in; `Ok(None)` without a session (no hook: nobody was signed in).
pub async fn me() -> Result<Option<Me>, ApiError> {
    let (status, text) = exchange("GET", "/me", Body::None).await?;
    match status {
        200 => {
            let me: Me = decode(&text)?;
            set_csrf(me.csrf_token.clone());
            Ok(Some(me))
        }
        401 => Ok(None),
        _ => Err(http_error(status, &text)),
    }
}

pub async fn logout() -> Result<(), ApiError> {
    let result = exchange("POST", "/auth/logout", Body::None).await;
    set_csrf(None);
    result.map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Fleet
// ---------------------------------------------------------------------------------------------

/// `GET /devices/summary`: the registry's fleet counts.
pub async fn summary() -> Result<DeviceSummary, ApiError> {
    call("GET", "/devices/summary", Body::None).await
}

/// One page of devices; `query` is a query string from [`format::query_string`].
pub async fn devices(query: &str) -> Result<DevicePage, ApiError> {
    call("GET", &format!("/devices{query}"), Body::None).await
}

pub async fn import_csv(csv: String) -> Result<ImportReport, ApiError> {
    call("POST", "/devices/import", Body::Csv(csv)).await
}

// ---------------------------------------------------------------------------------------------
// One device
// ---------------------------------------------------------------------------------------------

fn device_path(endpoint: &str, rest: &str) -> String {
    format!("/devices/{}{rest}", percent_encode(endpoint))
}

pub async fn device(endpoint: &str) -> Result<Device, ApiError> {
    call("GET", &device_path(endpoint, ""), Body::None).await
}

/// The live registration with its object links; `Ok(None)` when the device is not registered.
pub async fn registration(endpoint: &str) -> Result<Option<RegistrationOut>, ApiError> {
    match call("GET", &device_path(endpoint, "/registration"), Body::None).await {
        Ok(r) => Ok(Some(r)),
        Err(ApiError::Http { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn change_lifecycle(
    endpoint: &str,
    change: &LifecycleChange,
) -> Result<Device, ApiError> {
    call("POST", &device_path(endpoint, "/lifecycle"), json(change)?).await
}

pub async fn audit(endpoint: &str, before: Option<i64>) -> Result<AuditPage, ApiError> {
    let query = format::query_string(&[
        ("before", before.map(|b| b.to_string()).unwrap_or_default()),
        ("limit", "50".to_owned()),
    ]);
    call(
        "GET",
        &device_path(endpoint, &format!("/audit{query}")),
        Body::None,
    )
    .await
}

/// A device operation's answer: done, or queued for a sleeping device (202).
#[derive(Debug, Clone, PartialEq)]
pub enum OpReply<T> {
    Done(T),
    Pending(PendingResponse),
}

async fn operation<T: DeserializeOwned>(
    method: &str,
    path: String,
    body: Body,
) -> Result<OpReply<T>, ApiError> {
    let (status, text) = exchange(method, &path, body).await?;
    match status {
        202 => decode(&text).map(OpReply::Pending),
        200..=299 => decode(&text).map(OpReply::Done),
        401 => Err(unauthorized()),
        _ => Err(http_error(status, &text)),
    }
}

/// How long the console lets the server wait for a device before answering.
const WAIT_MS: u64 = 30_000;

pub async fn read(endpoint: &str, path: &str) -> Result<OpReply<ReadResponse>, ApiError> {
    let body = json(&ReadRequest {
        paths: vec![path.to_owned()],
        wait_ms: Some(WAIT_MS),
    })?;
    operation("POST", device_path(endpoint, "/read"), body).await
}

pub async fn write(
    endpoint: &str,
    path: &str,
    value: serde_json::Value,
) -> Result<OpReply<DoneResponse>, ApiError> {
    let body = json(&WriteRequest {
        path: path.to_owned(),
        value: Some(value),
        values: None,
        mode: None,
        wait_ms: Some(WAIT_MS),
    })?;
    operation("POST", device_path(endpoint, "/write"), body).await
}

pub async fn execute(
    endpoint: &str,
    path: &str,
    args: Option<String>,
) -> Result<OpReply<DoneResponse>, ApiError> {
    let body = json(&ExecuteRequest {
        path: path.to_owned(),
        args,
        wait_ms: Some(WAIT_MS),
    })?;
    operation("POST", device_path(endpoint, "/execute"), body).await
}

pub async fn observe(endpoint: &str, path: &str) -> Result<OpReply<ObserveResponse>, ApiError> {
    let body = json(&ObserveRequest {
        path: Some(path.to_owned()),
        paths: None,
        wait_ms: Some(WAIT_MS),
    })?;
    operation("POST", device_path(endpoint, "/observe"), body).await
}

pub async fn cancel_observe(endpoint: &str, observation: u64) -> Result<CancelResponse, ApiError> {
    let path = device_path(endpoint, &format!("/observe?observation={observation}"));
    call("DELETE", &path, Body::None).await
}

pub async fn observations(
    endpoint: &str,
) -> Result<Vec<api_types::lwm2m::ObservationOut>, ApiError> {
    call("GET", &device_path(endpoint, "/observations"), Body::None).await
}

// ---------------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------------

/// How long the server may wait for the device answering a diagnosis (its maximum is 60 s).
const DIAGNOSE_WAIT_MS: u64 = 30_000;

/// `POST /devices/{endpoint}/diagnose`: a completed run, or a pending one for a sleeping device
/// (poll it with [`diagnosis_run`]).
pub async fn diagnose(endpoint: &str) -> Result<DiagnosisRun, ApiError> {
    let body = json(&DiagnoseRequest {
        wait_ms: Some(DIAGNOSE_WAIT_MS),
    })?;
    call("POST", &device_path(endpoint, "/diagnose"), body).await
}

/// `GET /diagnostics/runs/{id}`.
pub async fn diagnosis_run(id: &str) -> Result<DiagnosisRun, ApiError> {
    call(
        "GET",
        &format!("/diagnostics/runs/{}", percent_encode(id)),
        Body::None,
    )
    .await
}

/// `GET /devices/{endpoint}/diagnostics`: runs newest first and the chart series.
pub async fn diagnosis_history(endpoint: &str) -> Result<DiagnosisHistory, ApiError> {
    call(
        "GET",
        &device_path(endpoint, "/diagnostics?limit=20"),
        Body::None,
    )
    .await
}

/// `GET /diagnostics/sweeps`: the newest sweeps.
pub async fn sweeps() -> Result<Vec<Sweep>, ApiError> {
    call("GET", "/diagnostics/sweeps", Body::None).await
}

/// `POST /diagnostics/sweeps` (fleet-manager and admin).
pub async fn start_sweep(request: &SweepRequest) -> Result<Sweep, ApiError> {
    call("POST", "/diagnostics/sweeps", json(request)?).await
}

pub async fn sweep(id: &str) -> Result<Sweep, ApiError> {
    call(
        "GET",
        &format!("/diagnostics/sweeps/{}", percent_encode(id)),
        Body::None,
    )
    .await
}

/// `POST /diagnostics/sweeps/{id}/cancel` (fleet-manager and admin): no more devices are started;
/// the sweep ends as interrupted.
pub async fn cancel_sweep(id: &str) -> Result<Sweep, ApiError> {
    call(
        "POST",
        &format!("/diagnostics/sweeps/{}/cancel", percent_encode(id)),
        Body::None,
    )
    .await
}

/// One page of a sweep's results, optionally only one rule or verdict.
pub async fn sweep_results(
    id: &str,
    rule: &str,
    verdict: &str,
    after: Option<&str>,
) -> Result<SweepResults, ApiError> {
    let query = format::query_string(&[
        ("rule", rule.to_owned()),
        ("verdict", verdict.to_owned()),
        ("after", after.unwrap_or_default().to_owned()),
        ("limit", "100".to_owned()),
    ]);
    call(
        "GET",
        &format!("/diagnostics/sweeps/{}/results{query}", percent_encode(id)),
        Body::None,
    )
    .await
}

/// Waits `ms` milliseconds (a browser timer), for polling.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

// ---------------------------------------------------------------------------------------------
// Live events (server-sent events)
// ---------------------------------------------------------------------------------------------

/// How a live event stream is doing, for the "live" indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Opening for the first time.
    Connecting,
    /// Open: events arrive as they happen.
    Live,
    /// Dropped; being opened again (events in between may have been missed).
    Reconnecting,
}

/// The first wait before opening a closed stream again, and the longest (doubling between).
const RETRY_FIRST_MS: u32 = 1_000;
const RETRY_MAX_MS: u32 = 30_000;

/// The wait before reconnection attempt `attempt` (0-based): 1 s, 2 s, 4 s, … at most 30 s.
pub fn retry_delay_ms(attempt: u32) -> u32 {
    RETRY_FIRST_MS
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(RETRY_MAX_MS)
}

type Listener = Closure<dyn Fn(web_sys::MessageEvent)>;
type StateListener = Closure<dyn Fn(web_sys::Event)>;

/// An open event stream; closed when unsubscribed. The listeners outlive any one
/// `EventSource`: a stream the browser gave up on is replaced by a new one with the same
/// listeners.
struct Subscription {
    url: String,
    source: web_sys::EventSource,
    // Kept alive as long as the subscription: the browser calls them.
    listeners: Vec<(String, Listener)>,
    opened: StateListener,
    dropped: StateListener,
    /// Failed attempts since the stream was last open.
    attempts: u32,
}

thread_local! {
    static SUBSCRIPTIONS: RefCell<HashMap<u32, Subscription>> = RefCell::new(HashMap::new());
    static NEXT_ID: RefCell<u32> = const { RefCell::new(0) };
}

/// Names an open stream (plain data, so reactive cleanups can hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId(u32);

/// A new `EventSource` for `url` with the listeners attached.
fn open_source(
    url: &str,
    listeners: &[(String, Listener)],
    opened: &StateListener,
    dropped: &StateListener,
) -> Option<web_sys::EventSource> {
    let source = web_sys::EventSource::new(url).ok()?;
    for (kind, closure) in listeners {
        source
            .add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())
            .ok()?;
    }
    source.set_onopen(Some(opened.as_ref().unchecked_ref()));
    source.set_onerror(Some(dropped.as_ref().unchecked_ref()));
    Some(source)
}

/// Opens subscription `id`'s stream again (if it still exists), and schedules the next attempt
/// should this one fail too.
fn reconnect(id: u32) {
    SUBSCRIPTIONS.with(|s| {
        if let Some(sub) = s.borrow_mut().get_mut(&id) {
            sub.source.close();
            if let Some(source) = open_source(&sub.url, &sub.listeners, &sub.opened, &sub.dropped) {
                sub.source = source;
            }
        }
    });
}

/// Schedules [`reconnect`] after the backoff of the subscription's failed attempts so far.
fn schedule_reconnect(id: u32) {
    let delay = SUBSCRIPTIONS.with(|s| {
        s.borrow_mut().get_mut(&id).map(|sub| {
            let delay = retry_delay_ms(sub.attempts);
            sub.attempts = sub.attempts.saturating_add(1);
            delay
        })
    });
    let (Some(delay), Some(window)) = (delay, web_sys::window()) else {
        return;
    };
    let callback = Closure::once_into_js(move || reconnect(id));
    let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
        callback.unchecked_ref(),
        i32::try_from(delay).unwrap_or(i32::MAX),
    );
}

/// Opens `GET /api/v1/events` (for one endpoint, or all) and calls `on_event(kind, data)` for
/// each message of the given kinds, and `on_state` when the stream opens, drops or comes back.
/// A stream that drops is retried by the browser; one the browser gives up on (the server
/// closed it with an error, or restarted) is opened again with a growing backoff, after
/// checking that the session is still there.
pub fn subscribe(
    endpoint: Option<&str>,
    kinds: &[&str],
    on_event: impl Fn(String, String) + 'static,
    on_state: impl Fn(LinkState) + 'static,
) -> Option<SubscriptionId> {
    let query = format::query_string(&[("endpoint", endpoint.unwrap_or_default().to_owned())]);
    let url = format!("{BASE}/events{query}");
    let id = NEXT_ID.with(|n| {
        let mut n = n.borrow_mut();
        *n = n.wrapping_add(1);
        *n
    });
    let on_event = std::rc::Rc::new(on_event);
    let listeners: Vec<(String, Listener)> = kinds
        .iter()
        .map(|kind| {
            let handler = on_event.clone();
            let name = (*kind).to_owned();
            let closure = Listener::new(move |event: web_sys::MessageEvent| {
                let data = event.data().as_string().unwrap_or_default();
                handler(name.clone(), data);
            });
            ((*kind).to_owned(), closure)
        })
        .collect();
    let on_state = std::rc::Rc::new(on_state);
    let live = on_state.clone();
    let opened = StateListener::new(move |_| {
        SUBSCRIPTIONS.with(|s| {
            if let Some(sub) = s.borrow_mut().get_mut(&id) {
                sub.attempts = 0;
            }
        });
        live(LinkState::Live);
    });
    let dropped = StateListener::new(move |event: web_sys::Event| {
        on_state(LinkState::Reconnecting);
        let closed = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::EventSource>().ok())
            .is_some_and(|s| s.ready_state() == web_sys::EventSource::CLOSED);
        if closed {
            // The browser will not retry this one (a refused or failed response): if the
            // session is gone that is a session expiry; otherwise try again after a while.
            wasm_bindgen_futures::spawn_local(async move {
                match me().await {
                    Ok(None) => {
                        unauthorized();
                    }
                    _ => schedule_reconnect(id),
                }
            });
        }
    });
    let source = open_source(&url, &listeners, &opened, &dropped)?;
    SUBSCRIPTIONS.with(|s| {
        s.borrow_mut().insert(
            id,
            Subscription {
                url,
                source,
                listeners,
                opened,
                dropped,
                attempts: 0,
            },
        )
    });
    Some(SubscriptionId(id))
}

/// Closes a stream opened by [`subscribe`] (and stops its reconnection).
pub fn unsubscribe(id: SubscriptionId) {
    if let Some(sub) = SUBSCRIPTIONS.with(|s| s.borrow_mut().remove(&id.0)) {
        sub.source.set_onopen(None);
        sub.source.set_onerror(None);
        sub.source.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_backs_off_to_thirty_seconds() {
        let delays: Vec<u32> = (0..8).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(retry_delay_ms(u32::MAX), 30_000);
    }
}
