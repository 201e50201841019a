"""How applications say they start and stop: the one home of those log-line patterns.

Example
-------
>>> import re
>>> from loglib.formats.lifecycle import APP_START_PATTERN, APP_STOP_PATTERN
>>> bool(re.search(APP_START_PATTERN, "checkout-api 1.1.0 starting pid 25322 on port 8000"))
True
>>> bool(re.search(APP_STOP_PATTERN, "received SIGTERM, shutting down"))
True
"""

from __future__ import annotations

#: a process (re)started: uvicorn, gunicorn, Spring Boot, Rails/Puma, Node and home-grown wording
#: (``myapp 1.2 starting pid 1234``, ``checkout-api 1.4.2 starting on port 8000``)
APP_START_PATTERN = (
    r"Application startup complete|Started server process \[\d+\]|Starting gunicorn \d|Booting worker with pid"
    r"|Started \w+ in [\d.]+ seconds|Puma starting in|Listening on (?:tcp|http|unix)://"
    r"|(?i:\bstarting (?:up )?(?:with )?pid[ :=]\s*\d+)"
    r"|(?i:^\S+ v?\d+(?:\.\d+)+\S* (?:is )?starting\b)"
    r"|(?i:\b(?:application|app|service|server|worker) (?:started|starting up|is starting|booted)\b)"
)
#: a process is about to stop: a signal received, a graceful shutdown, a worker exiting
APP_STOP_PATTERN = (
    r"(?i:received (?:signal )?SIG(?:TERM|INT|QUIT|HUP)\b|\bgot SIG(?:TERM|INT|QUIT)\b|caught SIG(?:TERM|INT)\b)"
    r"|(?i:^Shutting down\b|\bgraceful(?:ly)? shut(?:ting)? ?down|Worker exiting \(pid|Handling signal: (?:term|int|quit))"
    r"|(?i:\b(?:application|app|service|server) (?:is )?(?:shutting down|stopping|stopped)\b)"
    r"|(?i:Stopping (?:the )?(?:server|application|service)\b|Waiting for application shutdown)"
    r"|(?i:\b\S+ [\d.]+\S* stopped$)"
)
#: a start or a stop line: one search of every message for both (the two patterns' flags are scoped)
APP_LIFECYCLE_PATTERN = f"(?:{APP_START_PATTERN})|(?:{APP_STOP_PATTERN})"
