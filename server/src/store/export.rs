//! The CSV export one page at a time, so that the HTTP route can stream it: each call reads at
//! most [`EXPORT_PAGE`] devices (keyset pagination) and renders them as CSV. Memory stays at one
//! page whatever the fleet size. Pages are separate reads, not one snapshot: a device created or
//! changed while an export runs may or may not be in it (each device appears at most once, in
//! endpoint order).

use super::{Store, StoreError};
use crate::fleet::onboarding;
use crate::fleet::registry::{self, DeviceFilter, PageRequest};

/// Devices per export page (the largest list page).
pub const EXPORT_PAGE: u32 = registry::MAX_PAGE_SIZE;

/// One rendered page of the export.
#[derive(Debug)]
pub struct ExportChunk {
    /// CSV text: the header line first when asked for, then one line per device.
    pub csv: Vec<u8>,
    pub devices: usize,
    /// The cursor of the next page; None after the last one.
    pub next_after: Option<String>,
}

impl Store {
    /// The export page after `after` (None: the first page, with the header line).
    pub async fn export_csv_chunk(
        &self,
        filter: &DeviceFilter,
        after: Option<String>,
    ) -> Result<ExportChunk, StoreError> {
        let header = after.is_none();
        let page = self
            .list_devices(
                filter,
                &PageRequest {
                    after,
                    limit: EXPORT_PAGE,
                },
            )
            .await?;
        let mut writer = csv::Writer::from_writer(Vec::with_capacity(page.devices.len() * 160));
        if header {
            onboarding::write_export_header(&mut writer)?;
        }
        for device in &page.devices {
            onboarding::write_export_row(&mut writer, device)?;
        }
        let csv = writer
            .into_inner()
            .map_err(|e| StoreError::Csv(csv::Error::from(e.into_error())))?;
        Ok(ExportChunk {
            csv,
            devices: page.devices.len(),
            next_after: page.next_after,
        })
    }
}
