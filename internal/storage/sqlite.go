package storage

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// OpenSQLite opens (creating it and its directory if needed) the SQLite
// file at path, in WAL mode so that readers (reports, /v1/usage) never wait
// for the writer, with a busy timeout so that two handles on one file (a
// shipper and a report) take turns rather than fail.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("storage: an SQLite file path is required")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("storage: create the directory of %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return db, nil
}

// MigrateSQLite applies the component's migrations that have not run yet,
// each in a transaction with its record in schema_migrations.
func MigrateSQLite(ctx context.Context, db *sql.DB, component string, migrations []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version INTEGER NOT NULL,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("storage: create schema_migrations: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`,
		component).Scan(&have); err != nil {
		return fmt.Errorf("storage: read the %s schema version: %w", component, err)
	}
	if have > len(migrations) {
		return fmt.Errorf("storage: the %s schema is at version %d, newer than this binary knows (%d); run a newer databridge",
			component, have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("storage: %s migration %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (component, version) VALUES (?, ?)`, component, v); err != nil {
			tx.Rollback()
			return fmt.Errorf("storage: record %s migration %d: %w", component, v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("storage: %s migration %d: %w", component, v, err)
		}
	}
	return nil
}
