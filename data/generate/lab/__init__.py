"""The lab: scenarios drawn from a seed, recorded from real software, with truth from outside.

``params`` draws a scenario, ``record`` records it (PostgreSQL, Prometheus, postgres_exporter,
the idle-killing ``proxy`` and ``labapp`` processes), ``truth`` turns the lab's own event
streams into ``truth.json``, ``toml`` writes ``incident.toml``. See ``data/lab/README.md``.
"""
