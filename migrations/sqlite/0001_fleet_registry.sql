-- Fleet registry (SQLite): devices, their tags and the lifecycle audit trail.
-- Keep in step with ../postgres/0001_fleet_registry.sql: one test suite runs against both.

CREATE TABLE devices (
    id                  INTEGER PRIMARY KEY,
    -- The LwM2M endpoint client name; immutable (device_tags keeps a copy).
    endpoint            TEXT    NOT NULL UNIQUE,
    serial              TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    -- Tags as a JSON object, for display; device_tags holds them again for indexed filtering.
    tags                TEXT    NOT NULL DEFAULT '{}',
    customer            TEXT,
    security_mode       TEXT    NOT NULL CHECK (security_mode IN ('psk', 'nosec')),
    -- Unique while NULLs (NoSec devices) are not; kept after decommissioning so that a revoked
    -- identity is never handed out again.
    psk_identity        TEXT    UNIQUE,
    -- version || nonce || AES-256-GCM ciphertext || tag; NULL once revoked.
    psk_key_sealed      BLOB,
    credentials_revoked INTEGER NOT NULL DEFAULT 0 CHECK (credentials_revoked IN (0, 1)),
    state               TEXT    NOT NULL CHECK (state IN ('registered', 'provisioned', 'active',
                                    'suspended', 'updating', 'decommissioned')),
    firmware_version    TEXT,
    connectivity        TEXT    NOT NULL DEFAULT 'offline'
                                CHECK (connectivity IN ('online', 'sleeping', 'offline')),
    last_seen           TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);

-- Keyset pagination walks endpoint order; every equality filter gets an index whose second
-- column is the endpoint, so a filtered page is one index range scan.
CREATE INDEX devices_state_endpoint ON devices (state, endpoint);
CREATE INDEX devices_connectivity_endpoint ON devices (connectivity, endpoint);
CREATE INDEX devices_model_endpoint ON devices (model, endpoint);
CREATE INDEX devices_firmware_endpoint ON devices (firmware_version, endpoint);
CREATE INDEX devices_customer_endpoint ON devices (customer, endpoint);

CREATE TABLE device_tags (
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    -- Copy of devices.endpoint so that a tag filter pages in endpoint order from one index.
    endpoint  TEXT    NOT NULL,
    PRIMARY KEY (device_id, key)
) WITHOUT ROWID;

CREATE INDEX device_tags_key_value_endpoint ON device_tags (key, value, endpoint);

CREATE TABLE device_audit (
    -- Increasing: the newest-first pagination cursor.
    id         INTEGER PRIMARY KEY,
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    endpoint   TEXT    NOT NULL,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT,
    reason     TEXT
);

CREATE INDEX device_audit_device_id ON device_audit (device_id, id);
