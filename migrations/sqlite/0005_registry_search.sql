-- Registry search and summary (SQLite). Keep in step with ../postgres/0005_registry_search.sql.
--
-- The `q` filter (case-insensitive substring of endpoint, serial, model or customer) is served by
-- an FTS5 index with the trigram tokenizer (SQLite 3.34+, bundled by sqlx): a phrase query of 3
-- or more characters finds the candidate rows from the index instead of scanning every device;
-- the LIKE conditions stay in the query as the exact check. External content (the devices table
-- itself) keeps one copy of the text; the triggers below keep the index in step with it.

CREATE VIRTUAL TABLE device_search USING fts5(
    endpoint, serial, model, customer,
    content = 'devices', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);

-- Devices that exist before this migration.
INSERT INTO device_search (device_search) VALUES ('rebuild');

CREATE TRIGGER devices_search_insert AFTER INSERT ON devices BEGIN
    INSERT INTO device_search (rowid, endpoint, serial, model, customer)
    VALUES (new.id, new.endpoint, new.serial, new.model, new.customer);
END;

-- Only the searched columns: connectivity and state updates (the frequent writes) leave the
-- index alone.
CREATE TRIGGER devices_search_update AFTER UPDATE OF endpoint, serial, model, customer ON devices
BEGIN
    INSERT INTO device_search (device_search, rowid, endpoint, serial, model, customer)
    VALUES ('delete', old.id, old.endpoint, old.serial, old.model, old.customer);
    INSERT INTO device_search (rowid, endpoint, serial, model, customer)
    VALUES (new.id, new.endpoint, new.serial, new.model, new.customer);
END;

CREATE TRIGGER devices_search_delete AFTER DELETE ON devices BEGIN
    INSERT INTO device_search (device_search, rowid, endpoint, serial, model, customer)
    VALUES ('delete', old.id, old.endpoint, old.serial, old.model, old.customer);
END;

-- The fleet summary counts devices per (state, connectivity): a covering index makes the
-- unfiltered count one index scan without touching the table rows.
CREATE INDEX devices_state_connectivity ON devices (state, connectivity);
