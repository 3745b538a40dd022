-- Operator accounts (SQLite): users, console sessions, API tokens and the account audit trail.
-- Keep in step with ../postgres/0003_accounts.sql: one test suite runs against both.
-- Secrets are never stored: passwords as argon2id PHC strings, session ids and token secrets as
-- SHA-256 digests of 256-bit random values.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('field-service', 'fleet-manager', 'admin')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE sessions (
    id_digest    BLOB    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT    NOT NULL,
    last_used_at TEXT    NOT NULL,
    -- The absolute end; the idle limit is checked against last_used_at.
    expires_at   TEXT    NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    -- Never reused, even after revocation: `token:NAME` in an audit trail names one token.
    name          TEXT    NOT NULL UNIQUE,
    secret_digest BLOB    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('field-service', 'fleet-manager', 'admin')),
    -- NULL when the static admin token created it; the token dies with its owner.
    owner_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT
);

CREATE INDEX api_tokens_owner_id ON api_tokens (owner_id);

CREATE TABLE account_audit (
    -- Increasing: the newest-first pagination cursor.
    id      INTEGER PRIMARY KEY,
    at      TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT,
    source  TEXT,
    detail  TEXT
);
