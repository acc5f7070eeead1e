"""Pure per-page cleaning logic: no Beam, no I/O besides reading packaged data."""
