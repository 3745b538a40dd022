//! Rule thresholds. Every number a rule compares against lives here, with a default that follows
//! the OMA object semantics or common field practice, and can be changed in the server's
//! configuration file (`[diagnostics]` table) without touching a rule.

use serde::{Deserialize, Serialize};

/// Thresholds of every rule. Deserialises from a partial table: missing keys keep their default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// 4/0/2 Radio Signal Strength at or below this (dBm) is weak: antenna or relocation.
    pub rssi_weak_dbm: i64,
    /// At or below this (dBm) but above `rssi_weak_dbm`: marginal, watch it.
    pub rssi_marginal_dbm: i64,
    /// A weak reading this many dB below the device's earlier ones (median) is a change
    /// (antenna, cable, obstruction), not fading, even if its usual signal was better.
    pub rssi_drop_db: i64,
    /// 4/0/3 Link Quality on LTE / NB-IoT bearers is RSRQ in dB (OMA 1.1 object 4): at or below
    /// this it is poor (3GPP practice: below −15 dB is poor).
    pub rsrq_poor_db: i64,
    /// 4/0/3 on GSM is RxQual 0–7, higher is worse: at or above this it is poor.
    pub rxqual_poor: i64,
    /// 4/0/3 on other bearers (e.g. IEEE 802.15.4 LQI 0–255): at or below this it is poor.
    pub lqi_poor: i64,
    /// 3/0/9 Battery Level (%) at or below this is low.
    pub battery_low_percent: i64,
    /// At or below this it is critical (the meter may stop before a planned visit).
    pub battery_critical_percent: i64,
    /// Nominal voltage of the internal battery in mV (3/0/7 for the source with 3/0/6 = 1);
    /// a lithium thionyl chloride cell of a meter is 3.6 V.
    pub battery_nominal_mv: i64,
    /// A battery voltage below this fraction of nominal is "well below nominal".
    pub battery_voltage_low_ratio: f64,
    /// A battery level falling (least-squares trend over at least 3 snapshots) fast enough to
    /// reach 0 % within this many days is draining, whatever its level now.
    pub battery_drain_days: f64,
    /// Reboots within `reboot_window_hours` at or above this count are frequent.
    pub reboots_frequent_count: usize,
    pub reboot_window_hours: i64,
    /// Reboot intervals whose coefficient of variation is at most this are a rhythm
    /// ("every 6 hours"), given at least `reboot_rhythm_min_intervals` intervals.
    pub reboot_rhythm_max_cv: f64,
    pub reboot_rhythm_min_intervals: usize,
    /// 3/0/10 Memory Free below this fraction of 3/0/21 Memory Total is low.
    pub memory_low_ratio: f64,
    /// Free memory falling across at least this many snapshots (including the new one)...
    pub memory_leak_min_snapshots: usize,
    /// ...by at least this fraction of total memory overall is a leak.
    pub memory_leak_min_drop_ratio: f64,
    /// A device that restarts before a trend can show is still leaking when free memory fell
    /// within at least this many boots (at least 4 in 5 of the boots seen twice) and by
    /// `memory_leak_min_drop_ratio` of total memory summed over them.
    pub memory_leak_min_boots: usize,
    /// Boot samples (the server reads /3/0 twice after a Register, so that free memory of a
    /// device that restarts often has a trend within each boot): a device that restarted on
    /// its own at least this many times within `reboot_window_hours` is sampled (0: never).
    pub boot_sample_after_reboots: usize,
    /// The first read this long after the Register (s): past the start-up allocations, whose
    /// fall is not a leak.
    pub boot_sample_first_secs: f64,
    /// The second read this long after the Register (s), when the device's boot length is not
    /// known yet...
    pub boot_sample_second_secs: f64,
    /// ...and otherwise at this share of its last boot (the time between its last two
    /// restarts), as late as it is likely to stay up: a leak loses more memory the longer the
    /// two reads are apart, while the reading noise stays the same. At least twice
    /// `boot_sample_first_secs`, at most a day.
    pub boot_sample_second_share: f64,
    /// At most one sampled boot per device per this many seconds: with the defaults (4 h) at
    /// most 6 boots, 12 reads of /3/0, per device per day, and only for devices that restart.
    pub boot_sample_min_interval_secs: f64,
    /// Data sent or received per hour (7/0/2, 7/0/3) above this multiple of the device's own
    /// median rate over earlier snapshots is out of pattern (needs `traffic_min_intervals`).
    pub traffic_spike_factor: f64,
    pub traffic_min_intervals: usize,
    /// Optional service area for the location check: (min latitude, min longitude, max latitude,
    /// max longitude). Without it only impossible or null-island positions are flagged.
    pub service_area: Option<[f64; 4]>,
    /// A device whose last message is older than its lifetime plus this grace (s) has missed its
    /// check-in.
    pub checkin_grace_secs: i64,
    /// Missing this many lifetimes in a row needs a site visit (the meter is likely dead or cut off).
    pub checkin_site_visit_lifetimes: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            rssi_weak_dbm: -110,
            rssi_marginal_dbm: -100,
            rssi_drop_db: 10,
            rsrq_poor_db: -15,
            rxqual_poor: 5,
            lqi_poor: 50,
            battery_low_percent: 20,
            battery_critical_percent: 10,
            battery_nominal_mv: 3600,
            battery_voltage_low_ratio: 0.85,
            battery_drain_days: 30.0,
            reboots_frequent_count: 3,
            reboot_window_hours: 48,
            reboot_rhythm_max_cv: 0.15,
            reboot_rhythm_min_intervals: 2,
            memory_low_ratio: 0.10,
            memory_leak_min_snapshots: 3,
            memory_leak_min_drop_ratio: 0.05,
            memory_leak_min_boots: 3,
            boot_sample_after_reboots: 2,
            boot_sample_first_secs: 900.0,
            boot_sample_second_secs: 7200.0,
            boot_sample_second_share: 0.8,
            boot_sample_min_interval_secs: 14_400.0,
            traffic_spike_factor: 5.0,
            traffic_min_intervals: 3,
            service_area: None,
            checkin_grace_secs: 60,
            checkin_site_visit_lifetimes: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_partial_table_keeps_the_other_defaults() {
        let t: Thresholds =
            toml::from_str("rssi_weak_dbm = -105\nservice_area = [47.0, 5.0, 55.0, 15.0]").unwrap();
        assert_eq!(t.rssi_weak_dbm, -105);
        assert_eq!(t.service_area, Some([47.0, 5.0, 55.0, 15.0]));
        assert_eq!(
            t.battery_low_percent,
            Thresholds::default().battery_low_percent
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Thresholds>("rssi_week_dbm = -105").is_err());
    }
}
