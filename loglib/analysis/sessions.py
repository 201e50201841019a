import polars as pl
def pg_sessions(events): raise NotImplementedError
