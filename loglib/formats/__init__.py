"""Format knowledge with no I/O: log_line_prefix compiler, PostgreSQL message rules, sniffing."""
