//! The store's test suite, run against both engines. Each case is `async fn case_x(store: Store)`;
//! `dual_backend_tests!` turns it into `sqlite::case_x` (a temporary file) and `postgres::case_x`
//! (a fresh database per test, dropped afterwards, when `FERRITE_TEST_POSTGRES_URL` is set;
//! skipped with a message otherwise, and failing instead when `CI=true`).

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{Duration, TimeZone, Utc};

use super::scratch::{self, ScratchPostgres};
use super::{Store, StoreError};
use crate::fleet::lifecycle::{Actor, LifecycleState, SystemComponent};
use crate::fleet::onboarding::{ImportOutcome, ImportRejection, ImportReport};
use crate::fleet::registry::{
    AuditPageRequest, Connectivity, DeviceFilter, NewDevice, PageRequest, RegistrationRefusal,
    SecurityMode, Tags, ValidationError,
};
use crate::fleet::secrets::{PskKey, ServerKey};

fn test_key() -> ServerKey {
    ServerKey::from_bytes([7; 32])
}

fn alice() -> Actor {
    Actor::user("alice").unwrap()
}

/// Runs `case` on a store over a temporary SQLite file.
pub(super) async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferrite.db").display());
    let store = Store::connect(&url, test_key()).await.unwrap();
    case(store.clone()).await;
    store.close().await;
}

/// Runs `case` on a store over a fresh PostgreSQL database (dropped afterwards); skipped with a
/// message without `FERRITE_TEST_POSTGRES_URL`, failing instead with `CI=true`.
pub(super) async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin_url) = scratch::postgres_test_url() else {
        return;
    };
    let db = ScratchPostgres::create(&admin_url, "ferrite_test")
        .await
        .unwrap();
    let store = Store::connect(db.url(), test_key()).await.unwrap();
    // Run the case as a task so that a failing case still lets us drop its database.
    let outcome = tokio::spawn(case(store.clone())).await;
    store.close().await;
    db.drop_database().await.unwrap();
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task failed: {error}"),
        }
    }
}

/// Runs `case` on SQLite, then on PostgreSQL (as [`run_sqlite`] and [`run_postgres`]): for
/// store-backed tests outside the store's own case lists (the LwM2M tables, the persistence worker).
pub(crate) async fn on_both<F, Fut>(case: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_sqlite(&case).await;
    run_postgres(case).await;
}

/// `dual_backend_tests!(case_a, case_b)` in any store module's tests: `sqlite::case_a` and
/// `postgres::case_a`, each running `async fn case_a(store: Store)` of that module.
macro_rules! dual_backend_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::store::tests::run_sqlite(super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::store::tests::run_postgres(super::$case).await;
                }
            )*
        }
    };
}
pub(super) use dual_backend_tests;

dual_backend_tests!(
    case_create_and_get,
    case_create_refuses_duplicates_and_invalid_input,
    case_keys_are_sealed_at_rest,
    case_credentials_lookup_by_identity,
    case_may_register,
    case_list_filters,
    case_keyset_pagination_visits_every_device_once,
    case_transition_matrix,
    case_transitions_are_audited_in_order,
    case_operator_actions_need_reasons,
    case_decommission_revokes_credentials,
    case_concurrent_transitions_apply_once,
    case_fleet_audit_pages_newest_first,
    case_registration_connectivity_and_firmware,
    case_import_report_covers_every_reason,
    case_import_with_bootstrap_credentials,
    case_import_crosses_batches,
    case_export_has_no_keys,
    case_credentials_pages_hold_only_live_keys,
    case_batched_connectivity_updates,
    case_update_device_replaces_tags_and_audits,
    case_rotate_credentials,
    case_search_covers_four_columns_and_follows_edits,
    case_search_with_many_matches_and_streamed_export,
    case_summary_counts_the_filtered_fleet,
    case_export_neutralises_formulas_and_reimports,
);

fn psk_device(endpoint: &str, identity: &str, key_hex: &str) -> NewDevice {
    NewDevice {
        psk_identity: Some(identity.to_owned()),
        psk_key: Some(PskKey::from_hex(key_hex).unwrap()),
        ..NewDevice::psk(endpoint, &format!("SN-{endpoint}"), "EM-100")
    }
}

const KEY_A: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";
const KEY_B: &str = "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0";

async fn case_create_and_get(store: Store) {
    let mut new = psk_device("meter-1", "id-1", KEY_A);
    new.tags = Tags::from([
        ("region".to_owned(), "north".to_owned()),
        ("feeder".to_owned(), "F17".to_owned()),
    ]);
    new.customer = Some("C-100".into());
    let before = Utc::now() - Duration::seconds(1);
    let created = store.create_device(new, &alice()).await.unwrap();
    assert!(
        created.generated_psk_key.is_none(),
        "key was given, nothing generated"
    );
    let device = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(device, created.device);
    assert_eq!(device.serial, "SN-meter-1");
    assert_eq!(device.model, "EM-100");
    assert_eq!(device.tags.get("feeder").map(String::as_str), Some("F17"));
    assert_eq!(device.customer.as_deref(), Some("C-100"));
    assert_eq!(device.security_mode, SecurityMode::Psk);
    assert_eq!(device.psk_identity.as_deref(), Some("id-1"));
    assert_eq!(device.state, LifecycleState::Registered);
    assert_eq!(device.connectivity, Connectivity::Offline);
    assert_eq!(
        (device.last_seen, device.firmware_version.as_deref()),
        (None, None)
    );
    assert!(!device.credentials_revoked);
    assert!(device.created_at >= before && device.created_at == device.updated_at);

    // Identity and key generated when absent; the key is returned once and works for lookup.
    let generated = store
        .create_device(NewDevice::psk("meter-2", "SN-2", "EM-100"), &alice())
        .await
        .unwrap();
    let key = generated.generated_psk_key.expect("a generated key");
    assert_eq!(key.as_bytes().len(), 16);
    let identity = generated.device.psk_identity.clone().unwrap();
    assert!(identity.starts_with("fe-"));
    let credentials = store.psk_credentials(&identity).await.unwrap().unwrap();
    assert_eq!(credentials.key, key);

    let nosec = NewDevice {
        security_mode: SecurityMode::NoSec,
        ..NewDevice::psk("meter-3", "SN-3", "WM-1")
    };
    let created = store.create_device(nosec, &alice()).await.unwrap();
    assert_eq!(created.device.security_mode, SecurityMode::NoSec);
    assert_eq!(created.device.psk_identity, None);
    assert!(created.generated_psk_key.is_none());

    assert!(store.get_device("meter-404").await.unwrap().is_none());
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(audit.entries.len(), 1);
    assert_eq!(audit.entries[0].action, "created");
    assert_eq!(audit.entries[0].actor, "user:alice");
    assert_eq!(audit.entries[0].to_state, Some(LifecycleState::Registered));
}

async fn case_create_refuses_duplicates_and_invalid_input(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    let error = store
        .create_device(psk_device("meter-1", "id-other", KEY_A), &alice())
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DuplicateEndpoint(ref e) if e == "meter-1"),
        "{error}"
    );
    let error = store
        .create_device(psk_device("meter-2", "id-1", KEY_A), &alice())
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DuplicateIdentity(ref i) if i == "id-1"),
        "{error}"
    );
    let error = store
        .create_device(NewDevice::psk("bad endpoint", "S", "M"), &alice())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::Invalid(ValidationError::EndpointCharacter(' '))
    ));
    // Nothing of the refused creations was stored.
    assert_eq!(
        store.count_devices(&DeviceFilter::default()).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .fleet_audit(AuditPageRequest::first(10))
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
}

async fn case_keys_are_sealed_at_rest(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_B), &alice())
        .await
        .unwrap();
    let raw = store.raw_sealed_key("meter-1").await.unwrap().unwrap();
    let key = hex::decode(KEY_B).unwrap();
    // Neither the key nor any 8-byte piece of it, nor its hex text, is in the stored column.
    assert!(raw.windows(8).all(|w| !key.windows(8).any(|k| k == w)));
    assert!(!String::from_utf8_lossy(&raw).contains(&KEY_B[..16]));
    assert_eq!(raw.len(), 1 + 12 + key.len() + 16);
    let credentials = store.psk_credentials("id-1").await.unwrap().unwrap();
    assert_eq!(credentials.key.as_bytes(), key.as_slice());
}

async fn case_credentials_lookup_by_identity(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    store
        .create_device(psk_device("meter-2", "id-2", KEY_B), &alice())
        .await
        .unwrap();
    let one = store.psk_credentials("id-1").await.unwrap().unwrap();
    assert_eq!(one.endpoint, "meter-1");
    assert_eq!(one.identity, "id-1");
    assert_eq!(one.key.to_hex(), KEY_A);
    assert_eq!(one.state, LifecycleState::Registered);
    let two = store.psk_credentials("id-2").await.unwrap().unwrap();
    assert_eq!(
        (two.endpoint.as_str(), two.key.to_hex()),
        ("meter-2", KEY_B.to_owned())
    );
    assert!(store.psk_credentials("id-3").await.unwrap().is_none());
    assert!(store.psk_credentials("").await.unwrap().is_none());
    // The lookup's Debug never shows the key.
    assert!(!format!("{one:?}").contains(KEY_A));
}

async fn case_may_register(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    store
        .create_device(psk_device("meter-2", "id-2", KEY_B), &alice())
        .await
        .unwrap();
    let nosec = NewDevice {
        security_mode: SecurityMode::NoSec,
        ..NewDevice::psk("meter-ns", "SN", "WM-1")
    };
    store.create_device(nosec, &alice()).await.unwrap();

    let decide = |endpoint: &'static str, identity: Option<&'static str>, nosec: bool| {
        let store = store.clone();
        async move { store.may_register(endpoint, identity, nosec).await.unwrap() }
    };
    assert_eq!(
        decide("meter-1", Some("id-1"), false).await,
        Ok(LifecycleState::Registered)
    );
    assert_eq!(
        decide("meter-9", Some("id-1"), true).await,
        Err(RegistrationRefusal::UnknownEndpoint("meter-9".into()))
    );
    // meter-2's identity does not belong to meter-1.
    assert_eq!(
        decide("meter-1", Some("id-2"), false).await,
        Err(RegistrationRefusal::IdentityMismatch {
            endpoint: "meter-1".into()
        })
    );
    assert_eq!(
        decide("meter-1", None, true).await,
        Err(RegistrationRefusal::SecurityRequired("meter-1".into()))
    );
    assert_eq!(
        decide("meter-ns", None, false).await,
        Err(RegistrationRefusal::NoSecDisabledOnServer)
    );
    assert_eq!(
        decide("meter-ns", None, true).await,
        Ok(LifecycleState::Registered)
    );
    assert!(matches!(
        decide("meter-ns", Some("id-1"), true).await,
        Err(RegistrationRefusal::IdentityMismatch { .. })
    ));
    store
        .decommission("meter-1", &alice(), "meter removed from site")
        .await
        .unwrap();
    assert_eq!(
        decide("meter-1", Some("id-1"), true).await,
        Err(RegistrationRefusal::Decommissioned("meter-1".into()))
    );
}

/// 30 devices with known attributes, for the filter tests.
async fn seed_fleet(store: &Store) -> Vec<NewDevice> {
    let mut devices = Vec::new();
    for i in 0..30 {
        let mut new = NewDevice::psk(
            &format!("meter-{i:03}"),
            &format!("SN{:05}", 1000 + i),
            if i % 3 == 0 { "EM-200" } else { "EM-100" },
        );
        new.tags.insert(
            "region".into(),
            if i % 2 == 0 { "north" } else { "south" }.into(),
        );
        new.tags.insert("feeder".into(), format!("F{}", i % 5));
        if i % 4 == 0 {
            new.customer = Some("C-4".into());
        }
        store.create_device(new.clone(), &alice()).await.unwrap();
        devices.push(new);
    }
    devices
}

async fn all_endpoints(store: &Store, filter: &DeviceFilter) -> Vec<String> {
    let mut endpoints = Vec::new();
    let mut page = PageRequest::first(4);
    loop {
        let result = store.list_devices(filter, &page).await.unwrap();
        assert!(result.devices.len() <= 4);
        endpoints.extend(result.devices.into_iter().map(|d| d.endpoint));
        match result.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    assert_eq!(
        store.count_devices(filter).await.unwrap(),
        endpoints.len() as u64,
        "count agrees with the listing for {filter:?}"
    );
    endpoints
}

fn expected(devices: &[NewDevice], keep: impl Fn(usize, &NewDevice) -> bool) -> Vec<String> {
    devices
        .iter()
        .enumerate()
        .filter(|(i, d)| keep(*i, d))
        .map(|(_, d)| d.endpoint.clone())
        .collect()
}

async fn case_list_filters(store: Store) {
    let devices = seed_fleet(&store).await;
    let system = Actor::system(SystemComponent::Registration);
    for i in [1, 2, 5] {
        let endpoint = format!("meter-{i:03}");
        store
            .transition(&endpoint, LifecycleState::Active, &system, None)
            .await
            .unwrap();
    }
    store
        .suspend("meter-005", &alice(), "tamper alarm")
        .await
        .unwrap();
    store
        .set_connectivity("meter-002", Connectivity::Sleeping, Some(Utc::now()))
        .await
        .unwrap();
    store
        .set_firmware_version("meter-001", "2.1.0")
        .await
        .unwrap();
    store
        .set_firmware_version("meter-007", "2.1.0")
        .await
        .unwrap();

    let all = all_endpoints(&store, &DeviceFilter::default()).await;
    assert_eq!(all, expected(&devices, |_, _| true));
    assert_eq!(
        all_endpoints(
            &store,
            &(DeviceFilter {
                state: Some(LifecycleState::Active),
                ..Default::default()
            })
        )
        .await,
        ["meter-001", "meter-002"]
    );
    assert_eq!(
        all_endpoints(
            &store,
            &(DeviceFilter {
                state: Some(LifecycleState::Suspended),
                ..Default::default()
            })
        )
        .await,
        ["meter-005"]
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                connectivity: Some(Connectivity::Sleeping),
                ..Default::default()
            }
        )
        .await,
        ["meter-002"]
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                connectivity: Some(Connectivity::Offline),
                ..Default::default()
            }
        )
        .await
        .len(),
        29
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                model: Some("EM-200".into()),
                ..Default::default()
            }
        )
        .await,
        expected(&devices, |i, _| i % 3 == 0)
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                firmware_version: Some("2.1.0".into()),
                ..Default::default()
            }
        )
        .await,
        ["meter-001", "meter-007"]
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                customer: Some("C-4".into()),
                ..Default::default()
            }
        )
        .await,
        expected(&devices, |i, _| i % 4 == 0)
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                tags: vec![("region".into(), "south".into())],
                ..Default::default()
            }
        )
        .await,
        expected(&devices, |i, _| i % 2 == 1)
    );
    // Two tags and another filter: all must hold.
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                tags: vec![
                    ("region".into(), "north".into()),
                    ("feeder".into(), "F0".into())
                ],
                model: Some("EM-200".into()),
                ..Default::default()
            }
        )
        .await,
        expected(&devices, |i, _| i % 2 == 0 && i % 5 == 0 && i % 3 == 0)
    );
    // Text search: endpoint, serial, model or customer, case-insensitive, substring; LIKE
    // wildcards are literal.
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                search: Some("METER-01".into()),
                ..Default::default()
            }
        )
        .await,
        expected(&devices, |i, _| (10..20).contains(&i))
    );
    assert_eq!(
        all_endpoints(
            &store,
            &DeviceFilter {
                search: Some("sn01025".into()),
                ..Default::default()
            }
        )
        .await,
        ["meter-025"]
    );
    assert!(
        all_endpoints(
            &store,
            &DeviceFilter {
                search: Some("meter_0%".into()),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    assert!(
        all_endpoints(
            &store,
            &DeviceFilter {
                tags: vec![("region".into(), "east".into())],
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    // Page sizes are bounded.
    assert!(matches!(
        store
            .list_devices(&DeviceFilter::default(), &PageRequest::first(0))
            .await,
        Err(StoreError::Invalid(ValidationError::PageSize))
    ));
}

async fn case_keyset_pagination_visits_every_device_once(store: Store) {
    let devices = seed_fleet(&store).await;
    let mut seen = Vec::new();
    let mut page = PageRequest::first(7);
    let mut pages = 0;
    loop {
        let result = store
            .list_devices(&DeviceFilter::default(), &page)
            .await
            .unwrap();
        pages += 1;
        // A device created mid-way before the cursor must not shift later pages.
        if pages == 2 {
            store
                .create_device(NewDevice::psk("meter-000a", "SNX", "EM-100"), &alice())
                .await
                .unwrap();
        }
        seen.extend(result.devices.into_iter().map(|d| d.endpoint));
        match result.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    assert_eq!(pages, 5, "30 devices in pages of 7");
    assert_eq!(seen, expected(&devices, |_, _| true));
    // Exactly one page when the limit covers everything; an empty page after the last device.
    let one = store
        .list_devices(&DeviceFilter::default(), &PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!((one.devices.len(), one.next_after), (31, None));
    let after_last = store
        .list_devices(
            &DeviceFilter::default(),
            &PageRequest {
                after: Some("meter-029".into()),
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert!(after_last.devices.is_empty() && after_last.next_after.is_none());
}

/// Brings a new device into `state` along legal transitions.
async fn device_in_state(store: &Store, endpoint: &str, state: LifecycleState) {
    use LifecycleState::*;
    store
        .create_device(NewDevice::psk(endpoint, "SN", "EM-100"), &alice())
        .await
        .unwrap();
    let path: &[LifecycleState] = match state {
        Registered => &[],
        Provisioned => &[Provisioned],
        Active => &[Active],
        Suspended => &[Active, Suspended],
        Updating => &[Active, Updating],
        Decommissioned => &[Decommissioned],
    };
    for &to in path {
        store
            .transition(endpoint, to, &alice(), Some("test set-up"))
            .await
            .unwrap();
    }
}

async fn case_transition_matrix(store: Store) {
    let mut legal = 0;
    for (i, from) in LifecycleState::ALL.into_iter().enumerate() {
        for (j, to) in LifecycleState::ALL.into_iter().enumerate() {
            let endpoint = format!("m-{i}-{j}");
            device_in_state(&store, &endpoint, from).await;
            let audit_before = store
                .device_audit(&endpoint, AuditPageRequest::first(100))
                .await
                .unwrap()
                .entries
                .len();
            let result = store
                .transition(&endpoint, to, &alice(), Some("matrix"))
                .await;
            let device = store.get_device(&endpoint).await.unwrap().unwrap();
            let audit_after = store
                .device_audit(&endpoint, AuditPageRequest::first(100))
                .await
                .unwrap()
                .entries;
            match crate::fleet::lifecycle::validate_transition(from, to) {
                Ok(action) => {
                    legal += 1;
                    assert_eq!(result.unwrap().state, to, "{from} → {to}");
                    assert_eq!(device.state, to);
                    assert_eq!(audit_after.len(), audit_before + 1);
                    assert_eq!(audit_after[0].action, action.as_str());
                    assert_eq!(
                        (audit_after[0].from_state, audit_after[0].to_state),
                        (Some(from), Some(to))
                    );
                }
                Err(_) => {
                    match result {
                        Err(StoreError::IllegalTransition(e)) => {
                            assert_eq!((e.from, e.to), (from, to))
                        }
                        other => panic!("{from} → {to} should be illegal: {other:?}"),
                    }
                    assert_eq!(device.state, from, "an illegal transition changes nothing");
                    assert_eq!(audit_after.len(), audit_before, "and audits nothing");
                }
            }
        }
    }
    assert_eq!(legal, 12);
}

async fn case_transitions_are_audited_in_order(store: Store) {
    use LifecycleState::*;
    store
        .create_device(NewDevice::psk("meter-1", "SN", "EM-100"), &alice())
        .await
        .unwrap();
    let bootstrap = Actor::system(SystemComponent::Bootstrap);
    let registration = Actor::system(SystemComponent::Registration);
    let firmware = Actor::system(SystemComponent::Firmware);
    let ci = Actor::token("ci").unwrap();
    let steps: [(LifecycleState, &Actor, Option<&str>); 7] = [
        (Provisioned, &bootstrap, None),
        (Active, &registration, None),
        (Updating, &firmware, Some("campaign 7 wave 1")),
        (Active, &firmware, None),
        (Suspended, &alice(), Some("billing dispute")),
        (Active, &ci, Some("dispute settled")),
        (Decommissioned, &alice(), Some("meter replaced")),
    ];
    let start = Utc::now() - Duration::seconds(1);
    for (to, actor, reason) in steps {
        let device = store
            .transition("meter-1", to, actor, reason)
            .await
            .unwrap();
        assert_eq!(device.state, to);
    }
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(100))
        .await
        .unwrap();
    assert!(audit.next_before.is_none());
    let entries: Vec<_> = audit.entries.iter().rev().collect();
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[0].action, "created");
    let actions: Vec<&str> = entries[1..].iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "bootstrap_finished",
            "first_registration",
            "firmware_update_started",
            "firmware_update_finished",
            "suspend",
            "resume",
            "decommission"
        ]
    );
    let actors: Vec<&str> = entries[1..].iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actors,
        [
            "system:bootstrap",
            "system:registration",
            "system:firmware",
            "system:firmware",
            "user:alice",
            "token:ci",
            "user:alice"
        ]
    );
    assert_eq!(entries[5].reason.as_deref(), Some("billing dispute"));
    assert_eq!(entries[3].reason.as_deref(), Some("campaign 7 wave 1"));
    assert_eq!(entries[2].reason, None);
    assert_eq!(
        (entries[6].from_state, entries[6].to_state),
        (Some(Suspended), Some(Active))
    );
    for pair in entries.windows(2) {
        assert!(pair[0].id < pair[1].id && pair[0].at <= pair[1].at);
    }
    assert!(
        entries
            .iter()
            .all(|e| e.at >= start && e.endpoint == "meter-1")
    );
}

async fn case_operator_actions_need_reasons(store: Store) {
    device_in_state(&store, "meter-1", LifecycleState::Active).await;
    for reason in [None, Some(""), Some("   ")] {
        let error = store
            .transition("meter-1", LifecycleState::Suspended, &alice(), reason)
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::ReasonRequired { .. }),
            "{error}"
        );
    }
    let error = store
        .transition(
            "meter-1",
            LifecycleState::Decommissioned,
            &alice(),
            Some(&"x".repeat(1001)),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::ReasonRequired { .. }));
    let device = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(device.state, LifecycleState::Active);
    let error = store
        .transition("meter-404", LifecycleState::Active, &alice(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)));
    // System transitions need none.
    store
        .transition(
            "meter-1",
            LifecycleState::Updating,
            &Actor::system(SystemComponent::Firmware),
            None,
        )
        .await
        .unwrap();
}

async fn case_decommission_revokes_credentials(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    store
        .transition(
            "meter-1",
            LifecycleState::Active,
            &Actor::system(SystemComponent::Registration),
            None,
        )
        .await
        .unwrap();
    assert!(store.psk_credentials("id-1").await.unwrap().is_some());
    let device = store
        .decommission("meter-1", &alice(), "stolen meter")
        .await
        .unwrap();
    assert_eq!(device.state, LifecycleState::Decommissioned);
    assert!(device.credentials_revoked);
    // The identity stays reserved, the key is gone, the lookup fails.
    assert_eq!(device.psk_identity.as_deref(), Some("id-1"));
    assert_eq!(store.raw_sealed_key("meter-1").await.unwrap(), None);
    assert!(store.psk_credentials("id-1").await.unwrap().is_none());
    assert_eq!(
        store
            .may_register("meter-1", Some("id-1"), false)
            .await
            .unwrap(),
        Err(RegistrationRefusal::Decommissioned("meter-1".into()))
    );
    let error = store
        .create_device(psk_device("meter-2", "id-1", KEY_A), &alice())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::DuplicateIdentity(_)));
    let error = store.resume("meter-1", &alice(), "oops").await.unwrap_err();
    assert!(matches!(error, StoreError::IllegalTransition(ref e) if e.why.contains("terminal")));
}

async fn case_concurrent_transitions_apply_once(store: Store) {
    device_in_state(&store, "meter-1", LifecycleState::Active).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .suspend("meter-1", &Actor::user(&format!("op{n}")).unwrap(), "race")
                .await
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(device) => {
                assert_eq!(device.state, LifecycleState::Suspended);
                succeeded += 1;
            }
            Err(StoreError::IllegalTransition(e)) => {
                assert_eq!(e.from, LifecycleState::Suspended);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(succeeded, 1);
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(100))
        .await
        .unwrap();
    let suspends = audit
        .entries
        .iter()
        .filter(|e| e.action == "suspend")
        .count();
    assert_eq!(suspends, 1);
}

async fn case_fleet_audit_pages_newest_first(store: Store) {
    for i in 0..5 {
        device_in_state(&store, &format!("meter-{i}"), LifecycleState::Suspended).await;
    }
    // 5 × (created, first_registration, suspend).
    let mut ids = Vec::new();
    let mut page = AuditPageRequest::first(4);
    loop {
        let result = store.fleet_audit(page).await.unwrap();
        ids.extend(result.entries.iter().map(|e| e.id));
        match result.next_before {
            Some(before) => page.before = Some(before),
            None => break,
        }
    }
    assert_eq!(ids.len(), 15);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "strictly newest first");
    let newest = store.fleet_audit(AuditPageRequest::first(1)).await.unwrap();
    assert_eq!(newest.entries[0].endpoint, "meter-4");
    assert_eq!(newest.entries[0].action, "suspend");
    let one = store
        .device_audit("meter-2", AuditPageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(one.entries.len(), 2);
    assert!(one.entries.iter().all(|e| e.endpoint == "meter-2"));
    let rest = store
        .device_audit(
            "meter-2",
            AuditPageRequest {
                before: one.next_before,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 1);
    assert_eq!(rest.entries[0].action, "created");
    assert!(rest.next_before.is_none());
    assert!(matches!(
        store
            .device_audit("meter-404", AuditPageRequest::first(2))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn case_registration_connectivity_and_firmware(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let device = store
        .record_registration("meter-1", Connectivity::Online, at)
        .await
        .unwrap();
    assert_eq!(device.state, LifecycleState::Active);
    assert_eq!(device.connectivity, Connectivity::Online);
    assert_eq!(device.last_seen, Some(at));
    // A later Register (a reboot) changes connectivity, not the lifecycle.
    let later = at + Duration::minutes(15);
    let device = store
        .record_registration("meter-1", Connectivity::Sleeping, later)
        .await
        .unwrap();
    assert_eq!(
        (device.state, device.connectivity),
        (LifecycleState::Active, Connectivity::Sleeping)
    );
    assert_eq!(device.last_seen, Some(later));
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(10))
        .await
        .unwrap();
    let registrations: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "first_registration")
        .collect();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].actor, "system:registration");

    // Going offline keeps the last-seen time.
    store
        .set_connectivity("meter-1", Connectivity::Offline, None)
        .await
        .unwrap();
    let device = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(
        (device.connectivity, device.last_seen),
        (Connectivity::Offline, Some(later))
    );
    assert!(matches!(
        store
            .set_connectivity("meter-404", Connectivity::Online, None)
            .await,
        Err(StoreError::NotFound(_))
    ));

    store
        .set_firmware_version("meter-1", "1.4.2")
        .await
        .unwrap();
    let device = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(device.firmware_version.as_deref(), Some("1.4.2"));
    assert!(device.updated_at >= device.created_at);
    assert!(matches!(
        store.set_firmware_version("meter-1", "").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_firmware_version("meter-404", "1").await,
        Err(StoreError::NotFound(_))
    ));
}

/// The outcome of the import row on `line` of the file.
fn outcome_at(report: &ImportReport, line: u64) -> ImportOutcome {
    report
        .rows
        .iter()
        .find(|r| r.line == line)
        .map(|r| r.outcome.clone())
        .unwrap()
}

/// Why the import row on `line` was rejected (panics when it was not).
fn rejection_at(report: &ImportReport, line: u64) -> ImportRejection {
    match outcome_at(report, line) {
        ImportOutcome::Rejected(reason) => reason,
        other => panic!("line {line}: {other:?}"),
    }
}

/// The bootstrap columns: stored sealed in the same transaction as the device, audited, given
/// back by identity; both-or-neither per row; one identity namespace with device identities, in
/// the file and against the registry (device identities and bootstrap identities).
async fn case_import_with_bootstrap_credentials(store: Store) {
    store
        .create_device(psk_device("meter-db", "id-db", KEY_A), &alice())
        .await
        .unwrap();
    store
        .set_bootstrap_credentials(
            "meter-db",
            "bs-db",
            &PskKey::from_hex(KEY_B).unwrap(),
            &alice(),
        )
        .await
        .unwrap();
    let csv = format!(
        "endpoint,serial,model,bootstrap_psk_identity,bootstrap_psk_key_hex\n\
         meter-1,SN1,EM-100,bs-1,{KEY_A}\n\
         meter-2,SN2,EM-100,,\n\
         meter-3,SN3,EM-100,bs-3,\n\
         meter-4,SN4,EM-100,,{KEY_A}\n\
         meter-5,SN5,EM-100,bs-1,{KEY_B}\n\
         meter-6,SN6,EM-100,bs-db,{KEY_B}\n\
         meter-7,SN7,EM-100,id-db,{KEY_B}\n\
         meter-8,SN8,EM-100,bs-8,00ff\n\
         meter-9,SN9,EM-100,bs-9,{KEY_B}\n"
    );
    let report = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert!(report.aborted.is_none());
    let outcome = |line: u64| outcome_at(&report, line);
    let rejected = |line: u64| rejection_at(&report, line);
    for line in [2, 3, 10] {
        assert!(
            matches!(outcome(line), ImportOutcome::Accepted { .. }),
            "line {line}: {:?}",
            outcome(line)
        );
    }
    assert_eq!(rejected(4), ImportRejection::BootstrapIncomplete);
    assert_eq!(rejected(5), ImportRejection::BootstrapIncomplete);
    assert_eq!(
        rejected(6),
        ImportRejection::DuplicateIdentityInFile { first_line: 2 }
    );
    assert_eq!(rejected(7), ImportRejection::DuplicateIdentityInDatabase);
    assert_eq!(rejected(8), ImportRejection::DuplicateIdentityInDatabase);
    assert!(matches!(rejected(9), ImportRejection::BadBootstrapKey(_)));
    assert_eq!((report.accepted(), report.rejected()), (3, 6));
    // The report carries the keys for the bootstrap key cache (not the API answer).
    let mut cached: Vec<(String, String)> = report
        .bootstrap_credentials
        .iter()
        .map(|(identity, key)| (identity.clone(), key.to_hex()))
        .collect();
    cached.sort();
    assert_eq!(
        cached,
        [
            ("bs-1".to_owned(), KEY_A.to_owned()),
            ("bs-9".to_owned(), KEY_B.to_owned())
        ]
    );

    let stored = store.bootstrap_credentials("bs-1").await.unwrap().unwrap();
    assert_eq!(stored.endpoint, "meter-1");
    assert_eq!(stored.key.to_hex(), KEY_A);
    let owner = |identity: &'static str| {
        let store = store.clone();
        async move {
            store
                .bootstrap_credentials(identity)
                .await
                .unwrap()
                .map(|c| c.endpoint)
        }
    };
    assert_eq!(owner("bs-9").await.as_deref(), Some("meter-9"));
    // Rejected rows stored nothing; the registry's bootstrap identity still belongs to meter-db.
    assert_eq!(owner("bs-8").await, None);
    assert!(store.get_device("meter-6").await.unwrap().is_none());
    assert_eq!(owner("bs-db").await.as_deref(), Some("meter-db"));
    // meter-2 has no bootstrap credentials, meter-1's are audited.
    assert!(store.bootstrap_status("meter-2").await.unwrap().is_none());
    assert_eq!(
        store
            .bootstrap_status("meter-1")
            .await
            .unwrap()
            .unwrap()
            .bootstrap_identity,
        "bs-1"
    );
    let audit = store
        .device_audit(
            "meter-1",
            AuditPageRequest {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"imported"), "{actions:?}");
    assert!(
        actions.contains(&super::bootstrap::AUDIT_BOOTSTRAP_CREDENTIALS),
        "{actions:?}"
    );
}

async fn case_import_report_covers_every_reason(store: Store) {
    store
        .create_device(psk_device("meter-db", "id-db", KEY_A), &alice())
        .await
        .unwrap();
    let csv = format!(
        "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
         meter-1,SN1,EM-100,region=north;feeder=F1,id-1,{KEY_A},C-1\n\
         meter-2,SN2,EM-100,region=south,,,\n\
         meter-1,SN3,EM-100,,,,\n\
         meter-4,SN4,EM-100,,id-1,,\n\
         meter-db,SN5,EM-100,,,,\n\
         meter-6,SN6,EM-100,,id-db,,\n\
         bad/endpoint,SN7,EM-100,,,,\n\
         meter-8,SN8,EM-100,,,not-hex,\n\
         meter-9,SN9,EM-100,,,00ff,\n\
         meter-10,,EM-100,,,,\n\
         meter-11,SN11,EM-100,novalue,,,\n\
         meter-12,SN12\n"
    );
    let report = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert!(report.aborted.is_none());
    assert_eq!((report.accepted(), report.rejected()), (2, 10));
    let outcome = |line: u64| outcome_at(&report, line);
    let rejected = |line: u64| rejection_at(&report, line);
    match outcome(2) {
        ImportOutcome::Accepted {
            psk_identity,
            generated_psk_key,
        } => {
            assert_eq!(psk_identity, "id-1");
            assert!(generated_psk_key.is_none());
        }
        other => panic!("{other:?}"),
    }
    let generated = match outcome(3) {
        ImportOutcome::Accepted {
            psk_identity,
            generated_psk_key: Some(key),
        } => (psk_identity, key),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        store
            .psk_credentials(&generated.0)
            .await
            .unwrap()
            .unwrap()
            .key,
        generated.1
    );
    assert_eq!(
        rejected(4),
        ImportRejection::DuplicateEndpointInFile { first_line: 2 }
    );
    assert_eq!(
        rejected(5),
        ImportRejection::DuplicateIdentityInFile { first_line: 2 }
    );
    assert_eq!(rejected(6), ImportRejection::DuplicateEndpointInDatabase);
    assert_eq!(rejected(7), ImportRejection::DuplicateIdentityInDatabase);
    assert_eq!(
        rejected(8),
        ImportRejection::Invalid(ValidationError::EndpointCharacter('/'))
    );
    assert!(matches!(rejected(9), ImportRejection::BadKeyHex(_)));
    assert_eq!(rejected(10), ImportRejection::BadKeyLength(2));
    assert_eq!(
        rejected(11),
        ImportRejection::Invalid(ValidationError::Missing { field: "serial" })
    );
    assert!(matches!(
        rejected(12),
        ImportRejection::Invalid(ValidationError::TagSyntax(_))
    ));
    assert_eq!(
        rejected(13),
        ImportRejection::Invalid(ValidationError::Missing { field: "model" })
    );

    let one = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(one.tags.get("feeder").map(String::as_str), Some("F1"));
    assert_eq!(one.customer.as_deref(), Some("C-1"));
    assert_eq!(
        store
            .psk_credentials("id-1")
            .await
            .unwrap()
            .unwrap()
            .key
            .to_hex(),
        KEY_A
    );
    assert_eq!(
        store.count_devices(&DeviceFilter::default()).await.unwrap(),
        3
    );
    // Imported tags are filterable like created ones.
    let south = store
        .list_devices(
            &DeviceFilter {
                tags: vec![("region".into(), "south".into())],
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(south.devices.len(), 1);
    assert_eq!(south.devices[0].endpoint, "meter-2");
    let audit = store
        .device_audit("meter-2", AuditPageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(audit.entries[0].action, "imported");

    // A header without the required columns refuses the whole file.
    assert!(matches!(
        store
            .import_csv("endpoint,model\n".as_bytes(), &alice())
            .await,
        Err(StoreError::Import(_))
    ));
}

async fn case_import_crosses_batches(store: Store) {
    let mut csv = String::from("endpoint,serial,model,tags,psk_identity,psk_key_hex\n");
    for i in 0..2500 {
        csv.push_str(&format!("bulk-{i:05},S{i},EM-100,region=r{},,\n", i % 7));
    }
    let report = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert_eq!((report.accepted(), report.rejected()), (2500, 0));
    assert_eq!(
        store.count_devices(&DeviceFilter::default()).await.unwrap(),
        2500
    );
    let r3 = DeviceFilter {
        tags: vec![("region".into(), "r3".into())],
        ..Default::default()
    };
    assert_eq!(store.count_devices(&r3).await.unwrap(), 357);
    let identities: BTreeSet<String> = report
        .rows
        .iter()
        .filter_map(|r| match &r.outcome {
            ImportOutcome::Accepted { psk_identity, .. } => Some(psk_identity.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(identities.len(), 2500, "generated identities are unique");
    // Importing the same file again rejects every row as already in the registry.
    let again = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert_eq!(again.rejected(), 2500);
    assert!(again.rows.iter().all(|r| matches!(
        r.outcome,
        ImportOutcome::Rejected(ImportRejection::DuplicateEndpointInDatabase)
    )));
}

async fn case_export_has_no_keys(store: Store) {
    let csv = format!(
        "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
         meter-1,SN1,EM-100,region=north;feeder=F1,id-1,{KEY_A},C-1\n\
         meter-2,\"SN, two\",EM-200,,id-2,{KEY_B},\n"
    );
    store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    store.set_firmware_version("meter-2", "3.0").await.unwrap();
    let mut out = Vec::new();
    let written = store
        .export_csv(&DeviceFilter::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(written, 2);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains(KEY_A) && !text.contains(KEY_B) && !text.contains("psk_key"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, crate::fleet::onboarding::EXPORT_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][0], "meter-1");
    assert_eq!(&rows[0][3], "feeder=F1;region=north");
    assert_eq!(&rows[0][4], "id-1");
    assert_eq!(&rows[0][5], "C-1");
    assert_eq!(&rows[0][7], "registered");
    assert_eq!(&rows[1][1], "SN, two");
    assert_eq!(&rows[1][8], "3.0");
    // The export can be imported again (elsewhere): its extra columns are ignored.
    let filtered = store
        .export_csv(
            &DeviceFilter {
                model: Some("EM-200".into()),
                ..Default::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(filtered, 1);
}

async fn case_credentials_pages_hold_only_live_keys(store: Store) {
    for i in 0..7 {
        store
            .create_device(
                psk_device(&format!("meter-{i}"), &format!("id-{i}"), KEY_A),
                &alice(),
            )
            .await
            .unwrap();
    }
    let nosec = NewDevice {
        security_mode: SecurityMode::NoSec,
        ..NewDevice::psk("meter-ns", "SN", "WM-1")
    };
    store.create_device(nosec, &alice()).await.unwrap();
    store
        .decommission("meter-3", &alice(), "scrapped")
        .await
        .unwrap();
    let mut identities = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .psk_credentials_page(after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.credentials.len() <= 2);
        for c in &page.credentials {
            assert_eq!(c.key.to_hex(), KEY_A);
            assert_eq!(c.endpoint, c.identity.replace("id-", "meter-"));
            identities.push(c.identity.clone());
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(identities, ["id-0", "id-1", "id-2", "id-4", "id-5", "id-6"]);
    assert!(matches!(
        store.psk_credentials_page(None, 0).await,
        Err(StoreError::Invalid(ValidationError::PageSize))
    ));
}

async fn case_batched_connectivity_updates(store: Store) {
    for i in 0..3 {
        store
            .create_device(
                NewDevice::psk(&format!("meter-{i}"), "SN", "EM-100"),
                &alice(),
            )
            .await
            .unwrap();
    }
    let seen = Utc.with_ymd_and_hms(2025, 6, 1, 8, 30, 0).unwrap();
    let update = |endpoint: &str, connectivity, last_seen| crate::fleet::ConnectivityUpdate {
        endpoint: endpoint.to_owned(),
        connectivity,
        last_seen,
    };
    let changed = store
        .set_connectivity_many(&[
            update("meter-0", Connectivity::Online, Some(seen)),
            update("meter-1", Connectivity::Sleeping, Some(seen)),
            update("meter-404", Connectivity::Online, None),
        ])
        .await
        .unwrap();
    assert_eq!(changed, 2, "unknown endpoints are skipped");
    let changed = store
        .set_connectivity_many(&[update("meter-0", Connectivity::Offline, None)])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let zero = store.get_device("meter-0").await.unwrap().unwrap();
    assert_eq!(
        (zero.connectivity, zero.last_seen),
        (Connectivity::Offline, Some(seen))
    );
    let one = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(one.connectivity, Connectivity::Sleeping);
    let two = store.get_device("meter-2").await.unwrap().unwrap();
    assert_eq!(
        (two.connectivity, two.last_seen),
        (Connectivity::Offline, None)
    );
    assert_eq!(store.set_connectivity_many(&[]).await.unwrap(), 0);
}

async fn case_update_device_replaces_tags_and_audits(store: Store) {
    let mut new = NewDevice::psk("meter-1", "SN-1", "EM-100");
    new.tags = Tags::from([("region".to_owned(), "north".to_owned())]);
    new.customer = Some("C-1".into());
    store.create_device(new, &alice()).await.unwrap();
    let changes = crate::fleet::DeviceChanges {
        model: Some("EM-200".into()),
        customer: Some(None),
        tags: Some(Tags::from([
            ("region".to_owned(), "south".to_owned()),
            ("feeder".to_owned(), "F9".to_owned()),
        ])),
        ..Default::default()
    };
    let device = store
        .update_device("meter-1", changes, &alice())
        .await
        .unwrap();
    assert_eq!(
        (device.serial.as_str(), device.model.as_str()),
        ("SN-1", "EM-200")
    );
    assert_eq!(device.customer, None);
    assert_eq!(device.tags.len(), 2);
    let by_tag = |key: &str, value: &str| DeviceFilter {
        tags: vec![(key.into(), value.into())],
        ..Default::default()
    };
    // The tag index follows the edit: the old tag no longer matches, the new ones do.
    assert_eq!(
        store
            .count_devices(&by_tag("region", "north"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_devices(&by_tag("region", "south"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.count_devices(&by_tag("feeder", "F9")).await.unwrap(),
        1
    );
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(audit.entries[0].action, "updated");
    assert_eq!(audit.entries[0].actor, "user:alice");
    // Invalid edits change nothing.
    let bad = crate::fleet::DeviceChanges {
        tags: Some(Tags::from([("bad key".to_owned(), "x".to_owned())])),
        ..Default::default()
    };
    assert!(matches!(
        store.update_device("meter-1", bad, &alice()).await,
        Err(StoreError::Invalid(ValidationError::TagKey(_)))
    ));
    assert!(matches!(
        store
            .update_device("meter-404", Default::default(), &alice())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get_device("meter-1").await.unwrap().unwrap(), device);
}

async fn case_rotate_credentials(store: Store) {
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    store
        .create_device(psk_device("meter-2", "id-2", KEY_A), &alice())
        .await
        .unwrap();
    let bootstrap = Actor::system(SystemComponent::Bootstrap);
    let rotated = store
        .rotate_credentials("meter-1", None, None, &bootstrap, None)
        .await
        .unwrap();
    assert!(rotated.identity.starts_with("fe-"));
    assert!(
        store.psk_credentials("id-1").await.unwrap().is_none(),
        "old identity is gone"
    );
    let now = store
        .psk_credentials(&rotated.identity)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.endpoint.as_str(), &now.key), ("meter-1", &rotated.key));
    let given = PskKey::from_hex(KEY_B).unwrap();
    let rotated = store
        .rotate_credentials(
            "meter-1",
            Some("id-1b".into()),
            Some(given.clone()),
            &bootstrap,
            Some("re-bootstrap"),
        )
        .await
        .unwrap();
    assert_eq!((rotated.identity.as_str(), &rotated.key), ("id-1b", &given));
    assert_eq!(
        store.psk_credentials("id-1b").await.unwrap().unwrap().key,
        given
    );
    let audit = store
        .device_audit("meter-1", AuditPageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(audit.entries[0].action, "credentials_rotated");
    assert_eq!(audit.entries[0].actor, "system:bootstrap");
    assert_eq!(audit.entries[0].reason.as_deref(), Some("re-bootstrap"));
    assert!(!format!("{audit:?}").contains(KEY_B));

    let error = store
        .rotate_credentials("meter-1", Some("id-2".into()), None, &bootstrap, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DuplicateIdentity(ref i) if i == "id-2"),
        "{error}"
    );
    let nosec = NewDevice {
        security_mode: SecurityMode::NoSec,
        ..NewDevice::psk("meter-ns", "SN", "WM-1")
    };
    store.create_device(nosec, &alice()).await.unwrap();
    assert!(matches!(
        store
            .rotate_credentials("meter-ns", None, None, &bootstrap, None)
            .await,
        Err(StoreError::NotPskDevice(_))
    ));
    store
        .decommission("meter-2", &alice(), "removed")
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_credentials("meter-2", None, None, &bootstrap, None)
            .await,
        Err(StoreError::CredentialsRevoked(_))
    ));
    assert!(store.psk_credentials("id-2").await.unwrap().is_none());
}

// Durability: what was acknowledged is there after closing and reopening the database.

async fn write_then_reopen(url: &str) {
    let store = Store::connect(url, test_key()).await.unwrap();
    store
        .create_device(psk_device("meter-1", "id-1", KEY_A), &alice())
        .await
        .unwrap();
    store
        .suspend("meter-1", &alice(), "check durability")
        .await
        .unwrap_err(); // registered → suspended is illegal; nothing changes
    store
        .transition(
            "meter-1",
            LifecycleState::Active,
            &Actor::system(SystemComponent::Registration),
            None,
        )
        .await
        .unwrap();
    store.close().await;

    // Reopening runs the migrations again: they must be recognised as applied.
    let store = Store::connect(url, test_key()).await.unwrap();
    let device = store.get_device("meter-1").await.unwrap().unwrap();
    assert_eq!(device.state, LifecycleState::Active);
    assert_eq!(
        store
            .psk_credentials("id-1")
            .await
            .unwrap()
            .unwrap()
            .key
            .to_hex(),
        KEY_A
    );
    assert_eq!(
        store
            .device_audit("meter-1", AuditPageRequest::first(10))
            .await
            .unwrap()
            .entries
            .len(),
        2
    );
    store.close().await;

    // A different server key cannot read the stored keys (and says so instead of guessing).
    let other = Store::connect(url, ServerKey::from_bytes([8; 32]))
        .await
        .unwrap();
    assert!(matches!(
        other.psk_credentials("id-1").await,
        Err(StoreError::Secret(_))
    ));
    other.close().await;
}

#[tokio::test]
async fn sqlite_durability_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: created on first start.
    let path = dir.path().join("data").join("ferrite.db");
    let url = format!("sqlite://{}", path.display());
    write_then_reopen(&url).await;
    assert!(path.exists());
}

#[tokio::test]
async fn sqlite_pragmas_make_commits_durable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let store = Store::connect(&url, test_key()).await.unwrap();
    let super::Backend::Sqlite(backend) = &store.backend else {
        panic!("not sqlite");
    };
    let (journal_mode, synchronous, foreign_keys, busy_timeout) = backend.pragmas().await.unwrap();
    assert_eq!(journal_mode, "wal");
    assert_eq!(synchronous, 2, "synchronous=FULL");
    assert_eq!(foreign_keys, 1);
    assert!(busy_timeout >= 1000);
    store.close().await;
}

#[tokio::test]
async fn postgres_durability_close_and_reopen() {
    let Some(admin_url) = scratch::postgres_test_url() else {
        return;
    };
    let db = ScratchPostgres::create(&admin_url, "ferrite_test")
        .await
        .unwrap();
    let url = db.url().to_owned();
    let outcome = tokio::spawn(async move { write_then_reopen(&url).await }).await;
    db.drop_database().await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_across_calls() {
    let store = Store::connect("sqlite::memory:", test_key()).await.unwrap();
    store
        .create_device(NewDevice::psk("meter-1", "SN", "EM-100"), &alice())
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(store.get_device("meter-1").await.unwrap().is_some());
    }
    assert_eq!(format!("{store:?}"), "Store { backend: Sqlite, .. }");
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let error = Store::connect("mysql://localhost/x", test_key())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnsupportedUrl(ref s) if s == "mysql"));
    // The message never echoes the URL (it may carry a password).
    let error = Store::connect("oracle://user:secret@host/x", test_key())
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("secret"));
}

fn search(text: &str) -> DeviceFilter {
    DeviceFilter {
        search: Some(text.to_owned()),
        ..DeviceFilter::default()
    }
}

/// The `q` filter through the trigram indexes (3+ characters) and the scan (shorter), over
/// endpoint, serial, model and customer; the indexes follow inserts, edits and imports.
async fn case_search_covers_four_columns_and_follows_edits(store: Store) {
    let mut a = NewDevice::psk("alpha-1", "SN-XYZ-001", "EM-100");
    a.customer = Some("Stadtwerke Nord".into());
    let b = NewDevice::psk("beta-2", "SN-ABC-002", "GasMaster 9");
    let mut c = NewDevice::psk("gamma-3", "q_50%", "EM-200");
    c.customer = Some("ACME Corp".into());
    for device in [a, b, c] {
        store.create_device(device, &alice()).await.unwrap();
    }
    let csv = "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
               delta-4,SN-DEF-004,WM-5,,,,Acme Water\n";
    store.import_csv(csv.as_bytes(), &alice()).await.unwrap();

    let cases: &[(&str, &[&str])] = &[
        ("xyz", &["alpha-1"]),             // serial, other case
        ("gasmaster", &["beta-2"]),        // model
        ("STADTWERKE", &["alpha-1"]),      // customer
        ("acme", &["delta-4", "gamma-3"]), // customer, from an insert and an import
        ("a-1", &["alpha-1"]),             // endpoint
        ("em-", &["alpha-1", "gamma-3"]),  // model prefix
        ("50%", &["gamma-3"]),             // wildcards are literal
        ("_50", &["gamma-3"]),
        ("a_1", &[]),  // `_` does not match `-`
        ("-1SN", &[]), // never across two columns
        ("EM-100\u{1f}Stadt", &[]),
        ("no such text", &[]),
        // Shorter than a trigram: the scan, same semantics.
        ("A", &["alpha-1", "beta-2", "delta-4", "gamma-3"]),
        ("9", &["beta-2"]),
        ("%", &["gamma-3"]),
    ];
    for (text, expected) in cases {
        assert_eq!(
            &all_endpoints(&store, &search(text)).await,
            expected,
            "q = {text:?}"
        );
        let summary = store.device_summary(&search(text)).await.unwrap();
        assert_eq!(
            summary.total,
            expected.len() as u64,
            "summary for q = {text:?}"
        );
    }

    // Edits move the device in the index: the old text no longer finds it.
    store
        .update_device(
            "alpha-1",
            crate::fleet::registry::DeviceChanges {
                model: Some("HeatCount 7".into()),
                customer: Some(None),
                ..Default::default()
            },
            &alice(),
        )
        .await
        .unwrap();
    assert!(
        all_endpoints(&store, &search("stadtwerke"))
            .await
            .is_empty()
    );
    assert_eq!(
        all_endpoints(&store, &search("heatcount")).await,
        ["alpha-1"]
    );
    assert_eq!(all_endpoints(&store, &search("em-")).await, ["gamma-3"]);
    // State and connectivity changes leave the search alone.
    store
        .set_connectivity("gamma-3", Connectivity::Online, Some(Utc::now()))
        .await
        .unwrap();
    assert_eq!(all_endpoints(&store, &search("ACME C")).await, ["gamma-3"]);
    // Combined with other filters.
    let filter = DeviceFilter {
        connectivity: Some(Connectivity::Online),
        ..search("acme")
    };
    assert_eq!(all_endpoints(&store, &filter).await, ["gamma-3"]);
}

/// 2,500 matches: SQLite walks the endpoint order instead of the index (more candidates than
/// its threshold), PostgreSQL's planner chooses; both page through every match exactly once.
/// The export of the same fleet crosses three 1,000-device chunks.
async fn case_search_with_many_matches_and_streamed_export(store: Store) {
    let mut csv = String::from("endpoint,serial,model,tags,psk_identity,psk_key_hex\n");
    for i in 0..2500 {
        csv.push_str(&format!(
            "bulk-{i:05},S{i},EM-{},region=r{},,\n",
            i % 3,
            i % 7
        ));
    }
    let report = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert_eq!(report.accepted(), 2500);
    let mut page = PageRequest::first(100);
    let mut seen = Vec::new();
    loop {
        let result = store.list_devices(&search("BULK-"), &page).await.unwrap();
        seen.extend(result.devices.into_iter().map(|d| d.endpoint));
        match result.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    let expected: Vec<String> = (0..2500).map(|i| format!("bulk-{i:05}")).collect();
    assert_eq!(seen, expected);
    // A rare text among many devices: the index.
    assert_eq!(
        all_endpoints(&store, &search("bulk-01234")).await,
        ["bulk-01234"]
    );
    let summary = store.device_summary(&search("em-2")).await.unwrap();
    assert_eq!(summary.total, 833);

    let first = store
        .export_csv_chunk(&DeviceFilter::default(), None)
        .await
        .unwrap();
    assert_eq!(first.devices, 1000);
    assert!(first.csv.starts_with(b"endpoint,serial,model,"));
    let mut out = Vec::new();
    let written = store
        .export_csv(&DeviceFilter::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(written, 2500);
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let exported: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(
        exported, expected,
        "every device once, in order, one header"
    );
}

async fn case_summary_counts_the_filtered_fleet(store: Store) {
    let empty = store
        .device_summary(&DeviceFilter::default())
        .await
        .unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.by_state.len(), 6);
    assert!(empty.by_state.iter().all(|(_, n)| *n == 0));
    assert_eq!(empty.by_connectivity.len(), 3);

    let devices = seed_fleet(&store).await;
    let system = Actor::system(SystemComponent::Registration);
    for i in [1, 2, 5, 6] {
        store
            .record_registration(&format!("meter-{i:03}"), Connectivity::Online, Utc::now())
            .await
            .unwrap();
    }
    store
        .suspend("meter-005", &alice(), "tamper")
        .await
        .unwrap();
    store
        .set_connectivity("meter-002", Connectivity::Sleeping, Some(Utc::now()))
        .await
        .unwrap();
    store
        .transition("meter-007", LifecycleState::Provisioned, &system, None)
        .await
        .unwrap();

    let all = store
        .device_summary(&DeviceFilter::default())
        .await
        .unwrap();
    assert_eq!(all.total, 30);
    assert_eq!(all.state(LifecycleState::Registered), 25);
    assert_eq!(all.state(LifecycleState::Provisioned), 1);
    assert_eq!(all.state(LifecycleState::Active), 3);
    assert_eq!(all.state(LifecycleState::Suspended), 1);
    assert_eq!(all.state(LifecycleState::Decommissioned), 0);
    assert_eq!(all.connectivity(Connectivity::Online), 3);
    assert_eq!(all.connectivity(Connectivity::Sleeping), 1);
    assert_eq!(all.connectivity(Connectivity::Offline), 26);

    // The list's filters, with the same meaning: the summary of a filter counts what the list
    // of that filter shows.
    let filters = [
        DeviceFilter {
            model: Some("EM-200".into()),
            ..Default::default()
        },
        DeviceFilter {
            tags: vec![("region".into(), "north".into())],
            ..Default::default()
        },
        DeviceFilter {
            tags: vec![("region".into(), "south".into())],
            model: Some("EM-100".into()),
            ..Default::default()
        },
        DeviceFilter {
            state: Some(LifecycleState::Active),
            ..Default::default()
        },
        DeviceFilter {
            connectivity: Some(Connectivity::Online),
            customer: Some("C-4".into()),
            ..Default::default()
        },
        search("sn0101"),
    ];
    for filter in &filters {
        let listed = all_endpoints(&store, filter).await;
        let summary = store.device_summary(filter).await.unwrap();
        assert_eq!(summary.total, listed.len() as u64, "{filter:?}");
        let by_state: u64 = summary.by_state.iter().map(|(_, n)| n).sum();
        let by_connectivity: u64 = summary.by_connectivity.iter().map(|(_, n)| n).sum();
        assert_eq!((by_state, by_connectivity), (summary.total, summary.total));
    }
    let south_em100 = store.device_summary(&filters[2]).await.unwrap();
    let expected_south = expected(&devices, |i, _| i % 2 == 1 && i % 3 != 0);
    assert_eq!(south_em100.total, expected_south.len() as u64);
    // meter-001 and meter-005 are odd and not multiples of 3.
    assert_eq!(south_em100.state(LifecycleState::Active), 1);
    assert_eq!(south_em100.state(LifecycleState::Suspended), 1);
}

async fn case_export_neutralises_formulas_and_reimports(store: Store) {
    let csv = "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
               -meter-1,=1+2,@SUM(A1),k=+v,,,\"+49 30 1234\"\n\
               meter-2,'=already,EM-100,,,,plain\n";
    let report = store.import_csv(csv.as_bytes(), &alice()).await.unwrap();
    assert_eq!(report.accepted(), 2, "{report:?}");
    // A hand-written `'=` is read as an escaped formula: the quote is dropped.
    let two = store.get_device("meter-2").await.unwrap().unwrap();
    assert_eq!(two.serial, "=already");
    let mut out = Vec::new();
    store
        .export_csv(&DeviceFilter::default(), &mut out)
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][0], "'-meter-1");
    assert_eq!(&rows[0][1], "'=1+2");
    assert_eq!(&rows[0][2], "'@SUM(A1)");
    assert_eq!(&rows[0][3], "k=+v", "only the first character counts");
    assert_eq!(&rows[0][5], "'+49 30 1234");
    assert_eq!(&rows[1][1], "'=already");
    assert_eq!(&rows[1][5], "plain");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
    }
    // The export imports again (into an empty registry) with the original values.
    let parsed = crate::fleet::onboarding::parse_import(out.as_slice()).unwrap();
    let one = &parsed.candidates[0].device;
    assert_eq!(
        (
            one.endpoint.as_str(),
            one.serial.as_str(),
            one.model.as_str()
        ),
        ("-meter-1", "=1+2", "@SUM(A1)")
    );
    assert_eq!(one.customer.as_deref(), Some("+49 30 1234"));
    assert_eq!(parsed.candidates[1].device.serial, "=already");
}
