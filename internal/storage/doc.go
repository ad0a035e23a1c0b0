// Package storage opens the embedded SQLite file and the ClickHouse server
// that the usage and tick stores keep their tables in, and migrates their
// schemas with one mechanism: each store names its component and lists its
// migrations in order, and a schema_migrations table records which ran.
package storage
