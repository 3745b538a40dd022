-- Remote diagnostics, third step (PostgreSQL): how many devices a sweep expects, counted when it
-- starts (its filter's matches, capped by its limit), so that a running sweep's progress reads
-- "12 of 4,000 devices" rather than counting only the devices it has reached. NULL for sweeps
-- started before this column existed.
-- Keep in step with ../sqlite/0009_sweep_planned.sql: one test suite runs against both.
ALTER TABLE diagnostic_sweeps ADD COLUMN planned_devices BIGINT;
