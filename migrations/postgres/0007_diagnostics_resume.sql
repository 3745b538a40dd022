-- Remote diagnostics, second step (PostgreSQL): sweeps that survive a restart, and light samples
-- of the Device object taken between diagnoses.
-- Keep in step with ../sqlite/0007_diagnostics_resume.sql: one test suite runs against both.

-- How many devices the sweep may diagnose (NULL: the server's maximum), so that a sweep resumed
-- after a restart keeps its limit.
ALTER TABLE diagnostic_sweeps ADD COLUMN device_limit BIGINT;
-- Who cancelled the sweep. A cancelled sweep is stored as 'interrupted' with this set (as on
-- SQLite, where the status CHECK of 0006 cannot be changed without a table rebuild).
ALTER TABLE diagnostic_sweeps ADD COLUMN cancelled_by TEXT;

-- Device-object (/3/0) reads taken outside a diagnosis, e.g. twice per boot of a device that
-- restarts often, so that free memory has a trend within a boot (memory-leak rule).
CREATE TABLE diagnostic_samples (
    id       BIGSERIAL   PRIMARY KEY,
    endpoint TEXT        COLLATE "C" NOT NULL REFERENCES devices (endpoint) ON DELETE CASCADE,
    taken_at TIMESTAMPTZ NOT NULL,
    -- Why it was taken (e.g. 'boot').
    reason   TEXT        NOT NULL,
    -- JSON: ferrite_diagnostics::Snapshot.
    snapshot TEXT        NOT NULL
);

CREATE INDEX diagnostic_samples_endpoint ON diagnostic_samples (endpoint, taken_at);
