//! A stand-alone LwM2M server that accepts every registration (the tests' in-process server),
//! for measuring the simulator in a separate process until `ferrite serve` takes its place.
//!
//! ```text
//! cargo run --release -p client-sim --example accept_all_server -- 127.0.0.1:5683
//! cargo run --release -p client-sim --example accept_all_server -- 127.0.0.1:5684 \
//!     --psk SECRET METERS PREFIX
//! ```
//! It prints what it has seen every five seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use client_sim::meter::{endpoint_name, psk_key};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().map_or("127.0.0.1:5683", String::as_str);
    let server = match args.get(1).map(String::as_str) {
        Some("--psk") => {
            let secret = args.get(2).cloned().unwrap_or_else(|| "ferrite-sim".into());
            let meters: u32 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(100);
            let prefix = args.get(4).cloned().unwrap_or_else(|| "sim-".into());
            let keys = (0..meters)
                .map(|i| {
                    let identity = endpoint_name(&prefix, i);
                    let key = psk_key(&secret, &identity).to_vec();
                    (identity, key)
                })
                .collect();
            support::TestServer::start_psk_on(addr, keys)
        }
        _ => support::TestServer::start_nosec_on(addr),
    };
    println!("listening on {}", server.addr);
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let log = server.log.lock().unwrap_or_else(|e| e.into_inner());
        let sends: usize = log.sent_energy.values().map(Vec::len).sum();
        let notes: usize = log.notified_energy.values().map(Vec::len).sum();
        println!(
            "registered {} (registrations {}, re-registrations {}), /3/0 reads {}, \
             readings by Send {sends}, by notification {notes}, de-registered {}, op errors {}",
            log.registered.len(),
            log.registrations,
            log.re_registrations,
            log.device_reads.len(),
            log.deregistered.len(),
            log.op_errors.len()
        );
    }
}
