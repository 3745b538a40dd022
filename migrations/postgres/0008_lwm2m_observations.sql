-- LwM2M service, observations (PostgreSQL): the established observations of registered devices,
-- put back with their registrations after a restart. Without them a restarted server answers each
-- device's next notification with RST, the device stops notifying, and readings sent as
-- notifications stop until someone observes again.
-- Keep in step with ../sqlite/0008_lwm2m_observations.sql: one test suite runs against both.

CREATE TABLE lwm2m_observations (
    endpoint        TEXT        COLLATE "C" NOT NULL
                                REFERENCES lwm2m_registrations (endpoint) ON DELETE CASCADE,
    -- The engine's observation number (the API's handle), kept across restarts.
    observation     BIGINT      NOT NULL CHECK (observation >= 0),
    -- The registration it was made in: an observation ends with its registration.
    registration_id TEXT        NOT NULL,
    -- The CoAP token the notifications carry, lowercase hex (0 to 8 bytes).
    token           TEXT        NOT NULL CHECK (length(token) <= 16),
    -- The observed paths, space-separated (/3/0/9 /10243/0/14).
    paths           TEXT        NOT NULL,
    -- Observe-Composite rather than Observe.
    composite       BOOLEAN     NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (endpoint, observation)
);
