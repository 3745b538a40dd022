//! Start-up after a restart: the persisted registrations go back into the engine of the socket
//! they came through (their lifetime runs on from the stored wall-clock last update; those that
//! ran out while the server was down are dropped with an `Expired` event), then their persisted
//! observations (same numbers and tokens, so the devices' notifications keep arriving), then the
//! persisted queued requests are re-submitted with what is left of their expiry.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lwm2m_proto::coap::Token;
use lwm2m_proto::lwm2m::registration::Binding;
use lwm2m_proto::lwm2m::server::{
    ObservationId, ObservationRecord, PeerAuth, RegisteredObjects, RegistrationId,
    RestoredRegistration,
};

use super::directory::{RegistrationInfo, parse_version};
use super::events::{DeviceEvent, OperationId, OperationResult};
use super::persist::Job;
use super::socket::{Requested, SocketTask, Submit};
use super::stored::StoredOperation;
use crate::store::lwm2m::{
    QueuedRequest, RegistrationEventKind, RequestStatus, StoredObservation, StoredRegistration,
    Transport,
};

/// What became of the persisted registrations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestoreReport {
    pub restored: usize,
    pub expired: usize,
    pub dropped: usize,
    pub observations_restored: usize,
    pub observations_dropped: usize,
    pub requests_resubmitted: usize,
    pub requests_failed: usize,
}

fn since(now_wall: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now_wall - then).to_std().unwrap_or_default()
}

/// The engine's form of a persisted registration; Err names what does not parse.
fn restored(
    stored: &StoredRegistration,
    now_wall: DateTime<Utc>,
) -> Result<RestoredRegistration, String> {
    let id = RegistrationId::parse(&stored.registration_id)
        .ok_or_else(|| format!("registration ID {:?}", stored.registration_id))?;
    let version = parse_version(&stored.lwm2m_version)
        .ok_or_else(|| format!("LwM2M version {:?}", stored.lwm2m_version))?;
    let binding = Binding::parse(&stored.binding).map_err(|e| e.to_string())?;
    let objects = RegisteredObjects::parse(&stored.objects).map_err(|e| e.to_string())?;
    let peer = stored
        .address
        .parse()
        .map_err(|_| format!("address {:?}", stored.address))?;
    let auth = match (&stored.psk_identity, stored.transport) {
        (Some(identity), Transport::Coaps) => PeerAuth::Psk {
            identity: identity.clone(),
        },
        (None, Transport::Coap) => PeerAuth::NoSec,
        _ => return Err("identity does not fit the transport".into()),
    };
    Ok(RestoredRegistration {
        id,
        endpoint: stored.endpoint.clone(),
        version,
        binding,
        lifetime: stored.lifetime,
        sms_number: stored.sms_number.clone(),
        objects,
        peer,
        auth,
        since_registered: since(now_wall, stored.registered_at),
        since_last_update: since(now_wall, stored.last_update),
    })
}

impl SocketTask {
    /// Puts one persisted registration back; false when it could not be (then it is removed).
    fn restore(
        &mut self,
        now: Instant,
        now_wall: DateTime<Utc>,
        stored: &StoredRegistration,
    ) -> bool {
        let registration = match restored(stored, now_wall) {
            Ok(r) => r,
            Err(what) => {
                tracing::error!(endpoint = %stored.endpoint, "persisted registration unreadable ({what}); dropped");
                return false;
            }
        };
        let Some(info) = RegistrationInfo::from_stored(stored) else {
            return false;
        };
        match self.engine.restore_registration(now, registration) {
            Ok(()) => {
                if info.queue_mode {
                    let since_update = since(now_wall, stored.last_update);
                    let awake_left = self.awake_window.saturating_sub(since_update);
                    self.sleep.set(&stored.endpoint, now + awake_left);
                }
                self.shared.directory.insert(info);
                true
            }
            Err(error) => {
                tracing::error!(endpoint = %stored.endpoint, %error, "persisted registration not restored");
                false
            }
        }
    }
}

/// Restores every persisted registration into the socket task of its transport.
pub(crate) fn restore_registrations(
    tasks: &mut [SocketTask],
    stored: &[StoredRegistration],
    lifetime_grace: Duration,
    report: &mut RestoreReport,
) {
    let now = Instant::now();
    let now_wall = Utc::now();
    for registration in stored {
        let Some(shared) = tasks.first().map(|t| t.shared.clone()) else {
            return;
        };
        let end = |kind: RegistrationEventKind| Job::Ended {
            endpoint: registration.endpoint.clone(),
            registration_id: registration.registration_id.clone(),
            kind,
            at: now_wall,
            mark_offline: true,
        };
        let lifetime = Duration::from_secs(u64::from(registration.lifetime));
        if since(now_wall, registration.last_update) > lifetime + lifetime_grace {
            report.expired += 1;
            tracing::info!(endpoint = %registration.endpoint, "registration expired while the server was down");
            shared.persist(end(RegistrationEventKind::Expired));
            shared.publish(DeviceEvent::Expired {
                endpoint: registration.endpoint.clone(),
                registration_id: registration.registration_id.clone(),
                at: now_wall,
            });
            continue;
        }
        let task = tasks
            .iter_mut()
            .find(|t| t.transport == registration.transport);
        let restored = match task {
            Some(task) => task.restore(now, now_wall, registration),
            None => {
                tracing::info!(
                    endpoint = %registration.endpoint,
                    transport = %registration.transport,
                    "registration dropped: its socket is not open (NoSec disabled?)"
                );
                false
            }
        };
        if restored {
            report.restored += 1;
        } else {
            report.dropped += 1;
            shared.persist(end(RegistrationEventKind::Removed));
        }
    }
}

/// The engine's form of a persisted observation; Err names what does not parse.
fn observation_record(stored: &StoredObservation) -> Result<ObservationRecord, String> {
    let registration = RegistrationId::parse(&stored.registration_id)
        .ok_or_else(|| format!("registration ID {:?}", stored.registration_id))?;
    let token = hex::decode(&stored.token)
        .ok()
        .and_then(|bytes| Token::new(&bytes).ok())
        .ok_or_else(|| format!("token {:?}", stored.token))?;
    let paths = stored
        .paths
        .iter()
        .map(|p| p.parse().map_err(|_| format!("path {p:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ObservationRecord {
        observation: ObservationId::from_u64(stored.observation),
        endpoint: stored.endpoint.clone(),
        registration,
        token,
        paths,
        composite: stored.composite,
    })
}

/// Puts the persisted observations back into the engines holding their (restored)
/// registrations; the ones that cannot be (their registration expired or was dropped, or the row
/// does not parse) are deleted.
pub(crate) fn restore_observations(
    tasks: &mut [SocketTask],
    stored: &[StoredObservation],
    report: &mut RestoreReport,
) {
    let Some(shared) = tasks.first().map(|t| t.shared.clone()) else {
        return;
    };
    for observation in stored {
        let restored = observation_record(observation).and_then(|record| {
            let task = tasks
                .iter_mut()
                .find(|t| t.engine.registration(&record.endpoint).is_some())
                .ok_or_else(|| "the device is no longer registered".to_owned())?;
            task.engine
                .restore_observation(record)
                .map_err(|e| e.to_string())
        });
        match restored {
            Ok(()) => report.observations_restored += 1,
            Err(why) => {
                tracing::info!(
                    endpoint = %observation.endpoint,
                    observation = observation.observation,
                    "persisted observation not restored: {why}"
                );
                report.observations_dropped += 1;
                shared.persist(Job::ObservationEnded {
                    endpoint: observation.endpoint.clone(),
                    observation: observation.observation,
                });
            }
        }
    }
}

/// Re-submits the persisted requests still pending.
pub(crate) fn resubmit_requests(
    tasks: &mut [SocketTask],
    requests: Vec<QueuedRequest>,
    report: &mut RestoreReport,
) {
    let now = Instant::now();
    let now_wall = Utc::now();
    for request in requests {
        let Some(shared) = tasks.first().map(|t| t.shared.clone()) else {
            return;
        };
        let fail = |status: RequestStatus, message: String| {
            let result = OperationResult::Failed {
                error: super::events::ErrorView {
                    kind: status.as_str().to_owned(),
                    message,
                    coap_code: None,
                },
            };
            Job::Finish {
                id: request.id.clone(),
                status,
                at: now_wall,
                result_json: serde_json::to_string(&result).unwrap_or_default(),
            }
        };
        let Ok(id) = request.id.parse::<OperationId>() else {
            shared.persist(fail(RequestStatus::Failed, "unreadable request ID".into()));
            report.requests_failed += 1;
            continue;
        };
        let operation = match StoredOperation::from_json(&request.operation)
            .and_then(|stored| stored.to_operation())
        {
            Ok(operation) => operation,
            Err(error) => {
                tracing::error!(operation = %id, %error, "persisted request unreadable");
                shared.persist(fail(RequestStatus::Failed, error.to_string()));
                report.requests_failed += 1;
                continue;
            }
        };
        let remaining = (request.expires_at - now_wall).to_std().unwrap_or_default();
        if remaining.is_zero() {
            shared.persist(fail(
                RequestStatus::Expired,
                "the request expired while the server was down".into(),
            ));
            report.requests_failed += 1;
            continue;
        }
        let Some(task) = tasks
            .iter_mut()
            .find(|t| t.engine.registration(&request.endpoint).is_some())
        else {
            shared.persist(fail(
                RequestStatus::Failed,
                "the device is no longer registered".into(),
            ));
            report.requests_failed += 1;
            continue;
        };
        task.on_command(
            now,
            super::socket::Command::Submit(Box::new(Submit {
                id,
                endpoint: request.endpoint.clone(),
                request: Requested::Operation(operation),
                expiry: Some(remaining),
                persisted: true,
                created_at: request.created_at,
                completion: None,
                reply: None,
            })),
        );
        report.requests_resubmitted += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored(token: &str, paths: &[&str]) -> StoredObservation {
        StoredObservation {
            endpoint: "meter-1".into(),
            observation: 4,
            registration_id: "4kz9a0c1".into(),
            token: token.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            composite: paths.len() > 1,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_stored_observation_reads_back_as_the_engine_made_it() {
        let record = observation_record(&stored("0a1b", &["/3/0/9", "/10243/0/14"]));
        assert_eq!(
            record,
            Ok(ObservationRecord {
                observation: ObservationId::from_u64(4),
                endpoint: "meter-1".into(),
                registration: RegistrationId::parse("4kz9a0c1").unwrap(),
                token: Token::new(&[0x0a, 0x1b]).unwrap(),
                paths: vec![
                    lwm2m_objects::Path::Resource(3, 0, 9),
                    lwm2m_objects::Path::Resource(10243, 0, 14),
                ],
                composite: true,
            })
        );
        // The zero-length token occurs in the field.
        assert!(observation_record(&stored("", &["/3/0/9"])).is_ok());
    }

    #[test]
    fn an_unreadable_stored_observation_says_what_is_wrong() {
        let said = |o: StoredObservation| observation_record(&o).err().unwrap_or_default();
        assert!(said(stored("0g", &["/3/0/9"])).starts_with("token"));
        assert!(said(stored(&"00".repeat(9), &["/3/0/9"])).starts_with("token"));
        assert!(said(stored("01", &["/3/x/9"])).starts_with("path"));
        let mut bad_id = stored("01", &["/3/0/9"]);
        bad_id.registration_id = "not an id!".into();
        assert!(said(bad_id).starts_with("registration ID"));
    }
}
