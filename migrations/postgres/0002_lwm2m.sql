-- LwM2M service (PostgreSQL): current registrations (restored after a restart), requests waiting
-- for sleeping queue-mode devices, and the registration history (reboots for diagnostics).
-- Keep in step with ../sqlite/0002_lwm2m.sql: one test suite runs against both.

-- One row per registered endpoint: the engine's registration with wall-clock times.
CREATE TABLE lwm2m_registrations (
    endpoint        TEXT        COLLATE "C" PRIMARY KEY
                                REFERENCES devices (endpoint) ON DELETE CASCADE,
    -- The {id} of the client's Location-Path /rd/{id}.
    registration_id TEXT        NOT NULL,
    transport       TEXT        NOT NULL CHECK (transport IN ('coap', 'coaps')),
    lwm2m_version   TEXT        NOT NULL,
    -- 1.0 form with queue mode: U, UQ, …
    binding         TEXT        NOT NULL,
    lifetime        BIGINT      NOT NULL CHECK (lifetime >= 0),
    sms_number      TEXT,
    -- Registered objects, CoRE link format.
    objects         TEXT        NOT NULL,
    address         TEXT        NOT NULL,
    psk_identity    TEXT,
    registered_at   TIMESTAMPTZ NOT NULL,
    last_update     TIMESTAMPTZ NOT NULL
);

-- Requests to queue-mode devices: pending until the device wakes, then kept with their result
-- until pruned.
CREATE TABLE lwm2m_queued_requests (
    id          TEXT        COLLATE "C" PRIMARY KEY,
    endpoint    TEXT        COLLATE "C" NOT NULL REFERENCES devices (endpoint) ON DELETE CASCADE,
    -- The operation as JSON (server::lwm2m::StoredOperation).
    operation   TEXT        NOT NULL,
    status      TEXT        NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'expired')),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    -- The outcome or the error as JSON, once finished.
    result      TEXT
);

CREATE INDEX lwm2m_queued_requests_status ON lwm2m_queued_requests (status, created_at);
CREATE INDEX lwm2m_queued_requests_endpoint ON lwm2m_queued_requests (endpoint, created_at);

CREATE TABLE lwm2m_registration_events (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        TEXT        COLLATE "C" NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    kind            TEXT        NOT NULL CHECK (kind IN ('registered', 'reboot', 'deregistered',
                                    'expired', 'removed')),
    registration_id TEXT        NOT NULL,
    address         TEXT
);

CREATE INDEX lwm2m_registration_events_endpoint ON lwm2m_registration_events (endpoint, id);
