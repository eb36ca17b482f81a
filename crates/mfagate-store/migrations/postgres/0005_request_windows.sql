-- The per-IP request limit, counted once for every instance on this database (#11). UNLOGGED:
-- a count writes no WAL and waits for no fsync; a crash of the database empties the table,
-- which only starts the windows over.
CREATE UNLOGGED TABLE request_windows (
    key          TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    count        BIGINT NOT NULL
);
CREATE INDEX request_windows_by_end ON request_windows (window_end);
