"""Pipeline stages and their logic. Pure where possible; I/O only in fetch and store modules."""
