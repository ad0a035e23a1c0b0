package usage

// SetInsertsPerWrite sets how many INSERTs a large write is split into at
// most, for benchmarks that compare one connection with several.
func (s *ClickHouseStore) SetInsertsPerWrite(n int) { s.inserts = n }
