//! The lifecycle states of many devices in one query, for requests sent to many devices at once
//! (`POST /api/v1/fleet/read`): the service checks every endpoint's lifecycle before it sends
//! anything, and a round trip per endpoint would cost more than the device requests themselves.
//!
//! One statement whatever the number of endpoints: SQLite gets them as one JSON array
//! (`json_each`, no bound-parameter limit and one cached statement) and answers with one JSON
//! array, PostgreSQL gets one text array (`= ANY($1)`). Both use the `devices.endpoint` unique
//! index.

use std::collections::HashMap;

use super::{Backend, Store, StoreError};
use crate::fleet::lifecycle::LifecycleState;

/// One row whatever the number of devices: sqlx hands each SQLite row from its worker thread
/// to the caller through a channel (a wake-up per row), which cost more than the query itself
/// (200 rows: 1.1–6 ms measured, against a few hundred µs for the statement). The endpoints are
/// looked up by the `devices.endpoint` index, one per element of the JSON array.
const SQLITE_STATES: &str = "SELECT json_group_array(json_array(d.endpoint, d.state)) \
     FROM json_each($1) AS j JOIN devices AS d ON d.endpoint = j.value";
const POSTGRES_STATES: &str = "SELECT endpoint, state FROM devices WHERE endpoint = ANY($1)";

impl Store {
    /// The lifecycle state of each of `endpoints` that is in the registry; endpoints that are
    /// not are absent from the map (duplicates in `endpoints` are harmless).
    pub async fn lifecycle_states(
        &self,
        endpoints: &[&str],
    ) -> Result<HashMap<String, LifecycleState>, StoreError> {
        if endpoints.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String)> = match &self.backend {
            Backend::Sqlite(backend) => {
                let list = serde_json::to_string(endpoints)
                    .map_err(|e| StoreError::Corrupt(format!("endpoint list as JSON: {e}")))?;
                let found: String = sqlx::query_scalar(SQLITE_STATES)
                    .bind(list)
                    .fetch_one(&backend.pool)
                    .await?;
                serde_json::from_str(&found)
                    .map_err(|e| StoreError::Corrupt(format!("endpoint states as JSON: {e}")))?
            }
            Backend::Postgres(backend) => {
                sqlx::query_as(POSTGRES_STATES)
                    .bind(endpoints)
                    .fetch_all(&backend.pool)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(endpoint, state)| {
                let state = state.parse::<LifecycleState>().map_err(|_| {
                    StoreError::Corrupt(format!("device {endpoint:?} has state {state:?}"))
                })?;
                Ok((endpoint, state))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fleet::lifecycle::Actor;
    use crate::fleet::registry::{NewDevice, SecurityMode};
    use crate::store::tests::dual_backend_tests;

    dual_backend_tests!(case_lifecycle_states_of_many_endpoints);

    fn nosec(endpoint: &str) -> NewDevice {
        NewDevice {
            endpoint: endpoint.to_owned(),
            serial: format!("SN-{endpoint}"),
            model: "m".to_owned(),
            tags: Default::default(),
            customer: None,
            security_mode: SecurityMode::NoSec,
            psk_identity: None,
            psk_key: None,
        }
    }

    async fn case_lifecycle_states_of_many_endpoints(store: Store) {
        let actor = Actor::user("alice").unwrap();
        for endpoint in ["m-1", "m-2", "m-3", "a.b_c:d"] {
            store.create_device(nosec(endpoint), &actor).await.unwrap();
        }
        store
            .transition("m-2", LifecycleState::Active, &actor, None)
            .await
            .unwrap();
        store
            .transition("m-2", LifecycleState::Suspended, &actor, Some("unpaid"))
            .await
            .unwrap();

        assert!(store.lifecycle_states(&[]).await.unwrap().is_empty());
        let states = store
            .lifecycle_states(&["m-1", "m-2", "nope", "m-1", "a.b_c:d"])
            .await
            .unwrap();
        assert_eq!(states.len(), 3, "{states:?}");
        assert_eq!(states.get("m-1"), Some(&LifecycleState::Registered));
        assert_eq!(states.get("m-2"), Some(&LifecycleState::Suspended));
        assert_eq!(states.get("a.b_c:d"), Some(&LifecycleState::Registered));
        assert!(!states.contains_key("nope") && !states.contains_key("m-3"));

        // Far more endpoints than any bound-parameter limit, in one statement.
        let many: Vec<String> = (0..40_000).map(|i| format!("x-{i}")).collect();
        let mut names: Vec<&str> = many.iter().map(String::as_str).collect();
        names.push("m-3");
        let states = store.lifecycle_states(&names).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states.get("m-3"), Some(&LifecycleState::Registered));
    }
}
