//! The reading ledger (`--ledger FILE`): one JSON line for every reading a meter produced, every
//! reading it evicted from its full buffer, and every reading the server acknowledged (Send
//! answered 2.04, or the Confirmable notification carrying it ACKed), so a test can prove that
//! nothing acknowledged was lost and nothing was counted twice.
//!
//! Lines (times are simulated Unix seconds, the reading's own timestamp):
//! ```text
//! {"ev":"produced","ep":"sim-000001","seq":0,"t":1718000100,"kwh":1234.567,"kvarh":321.012}
//! {"ev":"evicted","ep":"sim-000001","seq":0,"t":1718000100}
//! {"ev":"acked","ep":"sim-000001","seq":0,"t":1718000100,"via":"send"}
//! {"ev":"firmware","ep":"sim-000001","t":1718003600,"version":"2.5.0","result":1,"bad":false}
//! ```
//! A `firmware` line is written when a meter restarts after Execute Update (result 1: the new
//! version runs; 8: the update failed and `version` is the old one); `bad` marks a version given
//! with `--bad-firmware`, so a rollout's health checks can be scored.
//! Each worker thread formats lines into its own buffer and appends them to the file in large
//! chunks, so lines from different meters interleave but are never torn.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::meter::Reading;

/// How a reading reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// LwM2M Send (`/dp`), 1.1 meters.
    Send,
    /// A notification of the observed power-meter instance, 1.0 meters.
    Notify,
}

/// The shared ledger file.
#[derive(Debug)]
pub struct Ledger {
    file: Mutex<BufWriter<File>>,
    /// The endpoint prefix as JSON string content (escaped, without quotes).
    prefix: String,
}

/// A worker's pending lines.
#[derive(Debug)]
pub struct LedgerWriter {
    ledger: Arc<Ledger>,
    buf: Vec<u8>,
}

/// Lines are appended to the file once this many bytes are pending.
const FLUSH_AT: usize = 256 * 1024;

impl Ledger {
    /// Creates (truncates) `path`. `endpoint_prefix` is the fleet's endpoint prefix.
    pub fn create(path: &Path, endpoint_prefix: &str) -> std::io::Result<Arc<Ledger>> {
        let file = File::create(path)?;
        let quoted = serde_json::to_string(endpoint_prefix).unwrap_or_else(|_| "\"\"".into());
        let prefix = quoted
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or("")
            .to_owned();
        Ok(Arc::new(Ledger {
            file: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
            prefix,
        }))
    }

    /// A writer for one worker.
    pub fn writer(self: &Arc<Ledger>) -> LedgerWriter {
        LedgerWriter {
            ledger: Arc::clone(self),
            buf: Vec::with_capacity(FLUSH_AT + 4096),
        }
    }

    fn append(&self, bytes: &[u8]) {
        // A poisoned lock means another worker panicked mid-write; keep writing what we can.
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        // The ledger is best effort at the I/O level: a full disk must not stop the fleet.
        let _ = file.write_all(bytes);
    }

    /// Flushes the file's buffer.
    pub fn sync(&self) {
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = file.flush();
    }
}

impl LedgerWriter {
    fn start(&mut self, ev: &str, index: u32, reading: &Reading) {
        // Writing into a Vec cannot fail. The number is formatted as in `endpoint_name`.
        let _ = write!(
            self.buf,
            "{{\"ev\":\"{ev}\",\"ep\":\"{}{:06}\",\"seq\":{},\"t\":{}",
            self.ledger.prefix,
            u64::from(index) + 1,
            reading.seq,
            reading.time
        );
    }

    fn end(&mut self) {
        self.buf.extend_from_slice(b"}\n");
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Meter `index` produced `reading`.
    pub fn produced(&mut self, index: u32, reading: &Reading) {
        self.start("produced", index, reading);
        let _ = write!(
            self.buf,
            ",\"kwh\":{},\"kvarh\":{}",
            reading.active_kwh, reading.reactive_kvarh
        );
        self.end();
    }

    /// A reading dropped from a full buffer.
    pub fn evicted(&mut self, index: u32, reading: &Reading) {
        self.start("evicted", index, reading);
        self.end();
    }

    /// A reading the server acknowledged.
    pub fn acked(&mut self, index: u32, reading: &Reading, via: Via) {
        self.start("acked", index, reading);
        let via = match via {
            Via::Send => "send",
            Via::Notify => "notify",
        };
        let _ = write!(self.buf, ",\"via\":\"{via}\"");
        self.end();
    }

    /// Meter `index` restarted after a firmware update at simulated time `t`: `version` is the
    /// one it runs now, `result` the Update Result (1 installed, 8 failed), `bad` whether that
    /// version is one of the bad ones.
    pub fn firmware(&mut self, index: u32, t: i64, version: &str, result: i64, bad: bool) {
        let version = serde_json::to_string(version).unwrap_or_else(|_| "\"\"".into());
        let _ = write!(
            self.buf,
            "{{\"ev\":\"firmware\",\"ep\":\"{}{:06}\",\"t\":{t},\"version\":{version},\"result\":{result},\"bad\":{bad}",
            self.ledger.prefix,
            u64::from(index) + 1,
        );
        self.end();
    }

    /// Appends the pending lines to the file.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.ledger.append(&self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for LedgerWriter {
    fn drop(&mut self) {
        self.flush();
        self.ledger.sync();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lines_are_json_with_the_escaped_prefix() {
        let dir = std::env::temp_dir().join(format!("ferrite-ledger-{}", std::process::id()));
        let ledger = Ledger::create(&dir, "sim\"-").unwrap();
        let r = Reading {
            seq: 7,
            time: 1_718_000_100,
            active_kwh: 1234.567,
            reactive_kvarh: 321.5,
            power_kw: 1.0,
            power_factor: 0.9,
        };
        {
            let mut w = ledger.writer();
            w.produced(0, &r);
            w.evicted(0, &r);
            w.acked(1, &r, Via::Send);
            w.firmware(2, 1_718_003_600, "2.5.0", 1, true);
        }
        let text = std::fs::read_to_string(&dir).unwrap();
        std::fs::remove_file(&dir).ok();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3]["ev"], "firmware");
        assert_eq!(lines[3]["ep"], "sim\"-000003");
        assert_eq!(lines[3]["version"], "2.5.0");
        assert_eq!(lines[3]["bad"], true);
        assert_eq!(lines[0]["ev"], "produced");
        assert_eq!(lines[0]["ep"], "sim\"-000001");
        assert_eq!(lines[0]["kwh"], 1234.567);
        assert_eq!(lines[1]["ev"], "evicted");
        assert_eq!(lines[2]["via"], "send");
        assert_eq!(lines[2]["seq"], 7);
        assert_eq!(lines[2]["t"], 1_718_000_100);
    }
}
