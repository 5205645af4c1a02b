"""The store: engines, transactions, the kit's tables, run history, stage records, controls,
the portable upsert and the kit's migrations."""
