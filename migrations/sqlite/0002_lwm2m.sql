-- LwM2M service (SQLite): current registrations (restored after a restart), requests waiting for
-- sleeping queue-mode devices, and the registration history (reboots for diagnostics).
-- Keep in step with ../postgres/0002_lwm2m.sql: one test suite runs against both.

-- One row per registered endpoint: the engine's registration with wall-clock times.
CREATE TABLE lwm2m_registrations (
    endpoint        TEXT    PRIMARY KEY REFERENCES devices (endpoint) ON DELETE CASCADE,
    -- The {id} of the client's Location-Path /rd/{id}.
    registration_id TEXT    NOT NULL,
    transport       TEXT    NOT NULL CHECK (transport IN ('coap', 'coaps')),
    lwm2m_version   TEXT    NOT NULL,
    -- 1.0 form with queue mode: U, UQ, …
    binding         TEXT    NOT NULL,
    lifetime        INTEGER NOT NULL CHECK (lifetime >= 0),
    sms_number      TEXT,
    -- Registered objects, CoRE link format.
    objects         TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    psk_identity    TEXT,
    registered_at   TEXT    NOT NULL,
    last_update     TEXT    NOT NULL
) WITHOUT ROWID;

-- Requests to queue-mode devices: pending until the device wakes, then kept with their result
-- until pruned.
CREATE TABLE lwm2m_queued_requests (
    id          TEXT PRIMARY KEY,
    endpoint    TEXT NOT NULL REFERENCES devices (endpoint) ON DELETE CASCADE,
    -- The operation as JSON (server::lwm2m::StoredOperation).
    operation   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'expired')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    finished_at TEXT,
    -- The outcome or the error as JSON, once finished.
    result      TEXT
);

CREATE INDEX lwm2m_queued_requests_status ON lwm2m_queued_requests (status, created_at);
CREATE INDEX lwm2m_queued_requests_endpoint ON lwm2m_queued_requests (endpoint, created_at);

CREATE TABLE lwm2m_registration_events (
    id              INTEGER PRIMARY KEY,
    endpoint        TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('registered', 'reboot', 'deregistered',
                                'expired', 'removed')),
    registration_id TEXT    NOT NULL,
    address         TEXT
);

CREATE INDEX lwm2m_registration_events_endpoint ON lwm2m_registration_events (endpoint, id);
