"""The throwaway server itself starts and logs connections."""

import psycopg


def test_server_logs_connections(pg_server):
    """A real connection shows up as received/authorized/disconnection in the stderr log."""
    with psycopg.connect(pg_server.dsn) as conn:
        conn.execute("select 1")
    pg_server.wait_for_log("disconnection: session time")
    text = (pg_server.log_dir / "postgresql.log").read_text()
    assert "connection received" in text
    assert (pg_server.log_dir / "postgresql.csv").exists()
    assert (pg_server.log_dir / "postgresql.json").exists()
