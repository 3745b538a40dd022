//! Boot samples: a device that restarts every few hours never shows free memory falling between
//! two diagnoses (hours or days apart) within one boot, so a memory leak behind the restarts
//! stays invisible. For such devices the server reads the Device object (/3/0: free memory,
//! battery, error codes, all cheap resources in one Read) twice after a Register: once past the
//! start-up allocations and once as late as the device is likely to stay up (a share of its last
//! boot), and stores both as samples that the memory-leak rule sees as a per-boot trend.
//!
//! What triggers it: a Register while registered (the device restarted on its own, TS Core
//! §6.2.1), when the device did so at least `boot_sample_after_reboots` times within
//! `reboot_window_hours`. Cost: at most 2 reads of /3/0 per sampled boot and one sampled boot
//! per `boot_sample_min_interval_secs` per device (defaults: ≤ 6 boots, ≤ 12 reads a day, only
//! for devices that restart that often; none for the others). Queue-mode devices are never
//! sampled (a read would wait for them to wake and cost battery).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferrite_diagnostics::Thresholds;
use lwm2m_objects::Path;
use lwm2m_proto::lwm2m::server::{OpOutcome, Operation};
use tokio::sync::{Semaphore, broadcast};
use tokio::time::Instant;

use super::{Diagnostics, Reading};
use crate::lwm2m::{DeviceEvent, Lwm2mService, OpResult, ServiceError};

/// How long one sample read waits for the device.
const READ_WAIT: Duration = Duration::from_secs(30);
/// Sample reads in flight at once, whatever the fleet does (a mass restart after a power cut).
const READS_AT_ONCE: usize = 32;
/// Boots waiting for their samples at once; more are not sampled.
const MAX_SCHEDULED: usize = 10_000;
/// Devices tracked before the tracker drops those with no restart within the window.
const PRUNE_AT: usize = 100_000;
/// Why a sample was taken (stored with it).
pub const REASON_BOOT: &str = "boot";

/// Which restarts get sampled: per device, its recent restarts and when its last sampled boot
/// was. Pure (time is an input).
#[derive(Debug, Default)]
pub struct BootTracker {
    devices: HashMap<String, Track>,
}

#[derive(Debug, Default)]
struct Track {
    restarts: VecDeque<Instant>,
    sampled: Option<Instant>,
}

impl BootTracker {
    /// Records a restart of `endpoint` at `now`. When this boot is to be sampled: how long
    /// after the restart the second read is due (the first is `boot_sample_first_secs`).
    pub fn restarted(&mut self, endpoint: &str, now: Instant, t: &Thresholds) -> Option<Duration> {
        if t.boot_sample_after_reboots == 0 {
            return None;
        }
        let window = window(t);
        if self.devices.len() >= PRUNE_AT {
            self.devices.retain(|_, track| {
                track
                    .restarts
                    .back()
                    .is_some_and(|&at| now.saturating_duration_since(at) <= window)
            });
        }
        let track = self.devices.entry(endpoint.to_owned()).or_default();
        track.restarts.push_back(now);
        while track
            .restarts
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) > window)
            || track.restarts.len() > t.boot_sample_after_reboots.max(2)
        {
            track.restarts.pop_front();
        }
        let interval = secs(t.boot_sample_min_interval_secs);
        let due = track
            .sampled
            .is_none_or(|at| now.saturating_duration_since(at) >= interval);
        if track.restarts.len() < t.boot_sample_after_reboots || !due {
            return None;
        }
        track.sampled = Some(now);
        let n = track.restarts.len();
        let last_boot = (n >= 2)
            .then(|| {
                let (a, b) = (track.restarts.get(n - 2)?, track.restarts.get(n - 1)?);
                Some(b.saturating_duration_since(*a))
            })
            .flatten();
        Some(match last_boot {
            Some(boot) => {
                let first = secs(t.boot_sample_first_secs);
                boot.mul_f64(t.boot_sample_second_share.clamp(0.0, 1.0))
                    .clamp(first * 2, Duration::from_secs(86_400).max(first * 2))
            }
            None => secs(t.boot_sample_second_secs),
        })
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

fn window(t: &Thresholds) -> Duration {
    Duration::from_secs(u64::try_from(t.reboot_window_hours.max(0)).unwrap_or(0) * 3600)
}

/// A configured number of seconds as a duration (negative or not a number: zero).
fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::ZERO)
}

/// Starts the listener: from now on, restarts of devices that restart often are sampled.
pub fn start(diagnostics: Diagnostics, service: Lwm2mService) {
    if diagnostics.thresholds.boot_sample_after_reboots == 0 {
        return;
    }
    let events = service.registration_events();
    tokio::spawn(listen(diagnostics, service, events));
}

async fn listen(
    diagnostics: Diagnostics,
    service: Lwm2mService,
    mut events: broadcast::Receiver<DeviceEvent>,
) {
    let mut tracker = BootTracker::default();
    let reads = Arc::new(Semaphore::new(READS_AT_ONCE));
    let scheduled = Arc::new(Semaphore::new(MAX_SCHEDULED));
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "boot samples: missed registration events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let DeviceEvent::Registered {
            registration,
            reboot: true,
        } = event
        else {
            continue;
        };
        if registration.queue_mode {
            continue;
        }
        let Some(second) = tracker.restarted(
            &registration.endpoint,
            Instant::now(),
            &diagnostics.thresholds,
        ) else {
            continue;
        };
        let Ok(slot) = scheduled.clone().try_acquire_owned() else {
            continue;
        };
        let (diagnostics, service, reads) = (diagnostics.clone(), service.clone(), reads.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let first = secs(diagnostics.thresholds.boot_sample_first_secs);
            let endpoint = registration.endpoint;
            tokio::time::sleep(first).await;
            if !sample(&diagnostics, &service, &reads, &endpoint).await {
                return;
            }
            tokio::time::sleep(second.saturating_sub(first)).await;
            sample(&diagnostics, &service, &reads, &endpoint).await;
        });
    }
}

/// Reads /3/0 of `endpoint` and stores it as a sample. `false` when the server is stopping.
/// A read that fails (the device restarted again, did not answer) is simply a missing sample.
async fn sample(
    diagnostics: &Diagnostics,
    service: &Lwm2mService,
    reads: &Arc<Semaphore>,
    endpoint: &str,
) -> bool {
    let Ok(_read) = reads.acquire().await else {
        return false;
    };
    let content = match service
        .request(endpoint, Operation::Read(Path::Instance(3, 0)), READ_WAIT)
        .await
    {
        Ok(OpResult::Done {
            outcome: OpOutcome::Content(content),
            ..
        }) => content,
        Err(ServiceError::Unavailable) => return false,
        Ok(other) => {
            tracing::debug!(%endpoint, ?other, "boot sample: no values");
            return true;
        }
        Err(error) => {
            tracing::debug!(%endpoint, %error, "boot sample: the read failed");
            return true;
        }
    };
    let now = Utc::now();
    let mut reading = Reading::new(now);
    reading.content(&content);
    let Ok(json) = serde_json::to_string(&reading.snapshot) else {
        return true;
    };
    if let Err(error) = diagnostics
        .store
        .insert_diagnostic_sample(endpoint, now, REASON_BOOT, &json)
        .await
    {
        tracing::warn!(%endpoint, %error, "boot sample could not be stored");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_devices_that_restart_often_are_sampled_and_at_a_bounded_rate() {
        let t = Thresholds::default(); // 2 restarts within 48 h; one sampled boot per 4 h
        let mut tracker = BootTracker::default();
        let t0 = Instant::now();
        let at = |hours: f64| t0 + Duration::from_secs_f64(hours * 3600.0);
        let hours = |h: f64| Some(Duration::from_secs_f64(h * 3600.0));
        // The first restart alone is not "often".
        assert_eq!(tracker.restarted("m", at(0.0), &t), None);
        // The second within 48 h is: sampled, the second read at 0.8 of the last boot (3 h).
        assert_eq!(tracker.restarted("m", at(3.0), &t), hours(2.4));
        // Another one 1 h later: too soon after the last sampled boot.
        assert_eq!(tracker.restarted("m", at(4.0), &t), None);
        // 4 h after the last sampled boot: sampled again; the last boot was 3 h.
        assert_eq!(tracker.restarted("m", at(7.0), &t), hours(2.4));
        // Every 3 h for a day: at most one sampled boot per 4 h (6 a day).
        let sampled = (1..=8)
            .filter(|n| {
                tracker
                    .restarted("m", at(7.0 + 3.0 * f64::from(*n)), &t)
                    .is_some()
            })
            .count();
        assert_eq!(sampled, 4);
        // Restarts 3 days apart are not "often".
        assert_eq!(tracker.restarted("rare", at(0.0), &t), None);
        assert_eq!(tracker.restarted("rare", at(72.0), &t), None);
        assert_eq!(tracker.restarted("rare", at(144.0), &t), None);
        assert_eq!(tracker.len(), 2);
        // A boot of 10 minutes: the second read still at twice the first's delay (30 min).
        assert_eq!(tracker.restarted("short", at(0.0), &t), None);
        assert_eq!(tracker.restarted("short", at(0.1667), &t), hours(0.5));
        // Sampled after the first restart: the boot length is not known, the default applies.
        let once = Thresholds {
            boot_sample_after_reboots: 1,
            ..Thresholds::default()
        };
        assert_eq!(tracker.restarted("new", at(0.0), &once), hours(2.0));
        // Switched off.
        let off = Thresholds {
            boot_sample_after_reboots: 0,
            ..Thresholds::default()
        };
        assert_eq!(tracker.restarted("m", at(500.0), &off), None);
        assert_eq!(tracker.restarted("m", at(501.0), &off), None);
    }

    #[test]
    fn odd_configured_seconds_do_not_panic() {
        assert_eq!(secs(-5.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(f64::INFINITY), Duration::ZERO);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
    }
}
