-- Remote diagnostics (PostgreSQL): fleet sweeps and diagnosis runs (one per device per request),
-- each with the snapshot the device answered and the diagnosis the rules made of it, kept so
-- that a device's snapshots can be compared over time.
-- Keep in step with ../sqlite/0006_diagnostics.sql: one test suite runs against both.

CREATE TABLE diagnostic_sweeps (
    id           TEXT             COLLATE "C" PRIMARY KEY,
    created_at   TIMESTAMPTZ      NOT NULL,
    created_by   TEXT             NOT NULL,
    -- The device filter as JSON (api_types::diagnostics::SweepFilter).
    filter       TEXT             NOT NULL,
    rate_per_sec DOUBLE PRECISION NOT NULL CHECK (rate_per_sec > 0),
    status       TEXT             NOT NULL CHECK (status IN ('running', 'completed', 'interrupted')),
    finished_at  TIMESTAMPTZ
);

CREATE TABLE diagnostic_runs (
    id           TEXT        COLLATE "C" PRIMARY KEY,
    endpoint     TEXT        COLLATE "C" NOT NULL REFERENCES devices (endpoint) ON DELETE CASCADE,
    sweep_id     TEXT        COLLATE "C" REFERENCES diagnostic_sweeps (id) ON DELETE SET NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    requested_by TEXT        NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    completed_at TIMESTAMPTZ,
    -- healthy | monitor | remote_action | site_visit, once completed.
    verdict      TEXT,
    -- Rules with a finding of at least minor severity, comma-separated (sweep counts).
    rules        TEXT        NOT NULL DEFAULT '',
    -- JSON: ferrite_diagnostics::Snapshot and ::Diagnosis.
    snapshot     TEXT,
    diagnosis    TEXT,
    error        TEXT
);

CREATE INDEX diagnostic_runs_endpoint ON diagnostic_runs (endpoint, requested_at);
CREATE INDEX diagnostic_runs_sweep ON diagnostic_runs (sweep_id, endpoint);
