"""promql/parser."""
