-- Bootstrap server (SQLite): each device's factory bootstrap credentials and the LwM2M-server
-- credentials a bootstrap delivered that the device has not used yet; bootstrap configurations
-- per device group (the device's `group` tag; the row `default` for devices without one).
-- Keep in step with ../postgres/0004_bootstrap.sql: one test suite runs against both.

CREATE TABLE device_bootstrap (
    endpoint           TEXT PRIMARY KEY REFERENCES devices (endpoint) ON DELETE CASCADE,
    -- The factory bootstrap PSK identity; kept after revocation so it is never reused.
    bs_identity        TEXT NOT NULL UNIQUE,
    -- version || nonce || AES-256-GCM ciphertext || tag, bound to the endpoint; NULL once revoked.
    bs_key_sealed      BLOB,
    -- Fresh LwM2M-server credentials delivered (or about to be) by bootstrap, accepted beside the
    -- device's current ones until it registers with them; then they replace them.
    pending_identity   TEXT UNIQUE,
    pending_key_sealed BLOB,
    pending_since      TEXT,
    -- The identity the last promotion replaced, until the LwM2M service dropped it.
    retired_identity   TEXT,
    bootstrapped_at    TEXT,
    updated_at         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE bootstrap_configs (
    group_name           TEXT    PRIMARY KEY,
    -- NULL: the server's public CoAPS URI (FERRITE_PUBLIC_COAPS_URI).
    server_uri           TEXT,
    security_mode        TEXT    NOT NULL CHECK (security_mode IN ('psk', 'nosec')),
    lifetime             INTEGER NOT NULL CHECK (lifetime > 0),
    binding              TEXT    NOT NULL,
    default_pmin         INTEGER,
    default_pmax         INTEGER,
    short_server_id      INTEGER NOT NULL CHECK (short_server_id BETWEEN 1 AND 65534),
    notification_storing INTEGER NOT NULL CHECK (notification_storing IN (0, 1)),
    updated_at           TEXT    NOT NULL,
    updated_by           TEXT    NOT NULL
);
