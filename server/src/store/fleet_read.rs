//! The lifecycle states of many devices in one query, for requests sent to many devices at once
//! (`POST /api/v1/fleet/read`): the service checks every endpoint's lifecycle before it sends
//! anything, and a round trip per endpoint would cost more than the device requests themselves.
//!
//! One statement whatever the number of endpoints: SQLite gets them as one JSON array
//! (`json_each`, no bound-parameter limit and one cached statement) and answers with one JSON
//! array, PostgreSQL gets one text array (`= ANY($1)`). Both use the `devices.endpoint` unique
//! index. The states read are remembered until the next state change (`lifecycle_cache.rs`;
//! on PostgreSQL while the listener for other nodes' changes listens), so a fleet read of the
//! same devices again asks the database nothing.

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
        let mut states = HashMap::with_capacity(endpoints.len());
        if endpoints.is_empty() {
            return Ok(states);
        }
        let (unknown, seen) = self.lifecycle.lookup(endpoints, &mut states);
        if unknown.is_empty() {
            return Ok(states);
        }
        let rows: Vec<(String, String)> = match &self.backend {
            Backend::Sqlite(backend) => {
                let list = serde_json::to_string(&unknown)
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
                    .bind(&unknown)
                    .fetch_all(&backend.pool)
                    .await?
            }
        };
        let read = parse_states(rows)?;
        self.lifecycle
            .fill(seen, read.iter().map(|(e, s)| (e.as_str(), *s)));
        states.extend(read);
        Ok(states)
    }

    /// The lifecycle state of one device; None when it is not in the registry. What every
    /// request to a single device checks first (remembered, as for [`Store::lifecycle_states`]).
    pub async fn lifecycle_state(
        &self,
        endpoint: &str,
    ) -> Result<Option<LifecycleState>, StoreError> {
        Ok(self.lifecycle_states(&[endpoint]).await?.remove(endpoint))
    }
}

/// `(endpoint, state)` rows as states.
fn parse_states(rows: Vec<(String, String)>) -> Result<Vec<(String, LifecycleState)>, StoreError> {
    rows.into_iter()
        .map(|(endpoint, state)| {
            let state = state.parse::<LifecycleState>().map_err(|_| {
                StoreError::Corrupt(format!("device {endpoint:?} has state {state:?}"))
            })?;
            Ok((endpoint, state))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fleet::lifecycle::Actor;
    use crate::fleet::registry::{NewDevice, SecurityMode};
    use crate::store::tests::dual_backend_tests;

    dual_backend_tests!(case_lifecycle_states_of_many_endpoints);

    /// Two nodes on one PostgreSQL database: a state one node changes does not stay in the
    /// other's cache (it hears the change's notification and forgets).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_nodes_change_reaches_this_nodes_cache() {
        use crate::fleet::secrets::ServerKey;
        use crate::store::scratch::{self, ScratchPostgres};
        use std::time::Duration;

        let Some(admin_url) = scratch::postgres_test_url() else {
            return;
        };
        let db = ScratchPostgres::create(&admin_url, "ferrite_test")
            .await
            .unwrap();
        let this = Store::connect(db.url(), ServerKey::from_bytes([7; 32]))
            .await
            .unwrap();
        let other = Store::connect(db.url(), ServerKey::from_bytes([7; 32]))
            .await
            .unwrap();
        let actor = Actor::user("alice").unwrap();
        this.create_device(nosec("m-1"), &actor).await.unwrap();

        // This node remembers m-1 once its listener listens (the cache is off until then).
        let remembered = |store: &Store| {
            store
                .lifecycle
                .lookup(&["m-1"], &mut HashMap::new())
                .0
                .is_empty()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !remembered(&this) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cache never came on"
            );
            assert_eq!(
                this.lifecycle_state("m-1").await.unwrap(),
                Some(LifecycleState::Registered)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The other node changes it: this node's answer follows within the notification's time.
        other
            .transition("m-1", LifecycleState::Active, &actor, None)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while this.lifecycle_state("m-1").await.unwrap() != Some(LifecycleState::Active) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "this node kept the state another node changed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        this.close().await;
        other.close().await;
        db.drop_database().await.unwrap();
    }

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

        // What was read is remembered on SQLite; every committed change is seen at once.
        store
            .transition("m-1", LifecycleState::Active, &actor, None)
            .await
            .unwrap();
        assert_eq!(
            store.lifecycle_state("m-1").await.unwrap(),
            Some(LifecycleState::Active)
        );
        store
            .suspend("m-1", &actor, "meter tampered")
            .await
            .unwrap();
        let again = store.lifecycle_states(&["m-1", "m-2"]).await.unwrap();
        assert_eq!(again.get("m-1"), Some(&LifecycleState::Suspended));
        assert_eq!(again.get("m-2"), Some(&LifecycleState::Suspended));
        store.resume("m-2", &actor, "paid").await.unwrap();
        assert_eq!(
            store.lifecycle_state("m-2").await.unwrap(),
            Some(LifecycleState::Active)
        );
        assert_eq!(store.lifecycle_state("nope").await.unwrap(), None);
        // A device created after a lookup missed it is found.
        store.create_device(nosec("nope"), &actor).await.unwrap();
        assert_eq!(
            store.lifecycle_state("nope").await.unwrap(),
            Some(LifecycleState::Registered)
        );

        // Far more endpoints than any bound-parameter limit, in one statement.
        let many: Vec<String> = (0..40_000).map(|i| format!("x-{i}")).collect();
        let mut names: Vec<&str> = many.iter().map(String::as_str).collect();
        names.push("m-3");
        let states = store.lifecycle_states(&names).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states.get("m-3"), Some(&LifecycleState::Registered));
    }
}
