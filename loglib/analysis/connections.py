def pg_connections(events, every="1m", by=None): raise NotImplementedError
