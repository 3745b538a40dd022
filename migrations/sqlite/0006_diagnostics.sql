-- Remote diagnostics (SQLite): fleet sweeps and diagnosis runs (one per device per request),
-- each with the snapshot the device answered and the diagnosis the rules made of it, kept so
-- that a device's snapshots can be compared over time.
-- Keep in step with ../postgres/0006_diagnostics.sql: one test suite runs against both.

CREATE TABLE diagnostic_sweeps (
    id           TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    -- The device filter as JSON (api_types::diagnostics::SweepFilter).
    filter       TEXT NOT NULL,
    rate_per_sec REAL NOT NULL CHECK (rate_per_sec > 0),
    status       TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted')),
    finished_at  TEXT
);

CREATE TABLE diagnostic_runs (
    id           TEXT PRIMARY KEY,
    endpoint     TEXT NOT NULL REFERENCES devices (endpoint) ON DELETE CASCADE,
    sweep_id     TEXT REFERENCES diagnostic_sweeps (id) ON DELETE SET NULL,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    completed_at TEXT,
    -- healthy | monitor | remote_action | site_visit, once completed.
    verdict      TEXT,
    -- Rules with a finding of at least minor severity, comma-separated (sweep counts).
    rules        TEXT NOT NULL DEFAULT '',
    -- JSON: ferrite_diagnostics::Snapshot and ::Diagnosis.
    snapshot     TEXT,
    diagnosis    TEXT,
    error        TEXT
);

CREATE INDEX diagnostic_runs_endpoint ON diagnostic_runs (endpoint, requested_at);
CREATE INDEX diagnostic_runs_sweep ON diagnostic_runs (sweep_id, endpoint);
