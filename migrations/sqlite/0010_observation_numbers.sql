-- LwM2M service, observation numbers (SQLite): the first number never given to an
-- observation. Restored observations keep theirs, but an observation that ended before a restart
-- is gone from lwm2m_observations; without this mark its number could be given to a new
-- observation of the same device, and an API caller still holding it would cancel the wrong one.
-- Keep in step with ../postgres/0010_observation_numbers.sql: one test suite runs against both.

CREATE TABLE lwm2m_counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >= 0)
);

INSERT INTO lwm2m_counters (name, value)
SELECT 'next_observation', COALESCE(MAX(observation) + 1, 0) FROM lwm2m_observations;
