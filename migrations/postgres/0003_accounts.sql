-- Operator accounts (PostgreSQL): users, console sessions, API tokens and the account audit trail.
-- Keep in step with ../sqlite/0003_accounts.sql: one test suite runs against both.
-- Secrets are never stored: passwords as argon2id PHC strings, session ids and token secrets as
-- SHA-256 digests of 256-bit random values.

CREATE TABLE users (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        COLLATE "C" NOT NULL UNIQUE,
    role          TEXT        NOT NULL CHECK (role IN ('field-service', 'fleet-manager', 'admin')),
    password_hash TEXT        NOT NULL,
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id_digest    BYTEA       PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    -- The absolute end; the idle limit is checked against last_used_at.
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE api_tokens (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Never reused, even after revocation: `token:NAME` in an audit trail names one token.
    name          TEXT        COLLATE "C" NOT NULL UNIQUE,
    secret_digest BYTEA       NOT NULL UNIQUE,
    role          TEXT        NOT NULL CHECK (role IN ('field-service', 'fleet-manager', 'admin')),
    -- NULL when the static admin token created it; the token dies with its owner.
    owner_id      BIGINT      REFERENCES users (id) ON DELETE CASCADE,
    created_by    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_tokens_owner_id ON api_tokens (owner_id);

CREATE TABLE account_audit (
    -- Increasing: the newest-first pagination cursor.
    id      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT        NOT NULL,
    action  TEXT        NOT NULL,
    subject TEXT,
    source  TEXT,
    detail  TEXT
);
