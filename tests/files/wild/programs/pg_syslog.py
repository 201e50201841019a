"""Real PostgreSQL logs through syslog, whose messages carry PostgreSQL's own ms timestamp.

Run from the repository root as root: ``.venv/bin/python tests/files/wild/programs/pg_syslog.py``.
Starts Debian's rsyslogd in the foreground with its own configuration (local0 to two files: the
traditional BSD header and RFC 3339 headers), a throwaway PostgreSQL with ``log_destination=syslog``
and ``log_line_prefix='%m [%p] %q%u@%d '``, runs the session of ``pg_prefixes.py``, stops both and
writes ``tests/files/wild/pg15-syslog-bsd.log`` and ``pg15-syslog-rfc3339.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from tests.files.wild.programs.pg_prefixes import session
from tests.pgserver import start_server

OUT = Path(__file__).resolve().parents[1]

CONF = """
module(load="imuxsock")
$template hires,"%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n"
local0.* {dir}/bsd.log;RSYSLOG_TraditionalFileFormat
local0.* {dir}/rfc3339.log;hires
"""


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="loglib-syslog-"))
    (work / "rsyslog.conf").write_text(CONF.format(dir=work))
    daemon = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        server = start_server(
            {
                "log_destination": "'syslog'",
                "syslog_facility": "'local0'",
                "syslog_ident": "'postgres'",
                "log_line_prefix": "'%m [%p] %q%u@%d '",
            }
        )
        try:
            session(server.port)
            time.sleep(0.5)
        finally:
            server.stop()
        time.sleep(1.0)
    finally:
        os.kill(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=10)
    shutil.copy(work / "bsd.log", OUT / "pg15-syslog-bsd.log")
    shutil.copy(work / "rfc3339.log", OUT / "pg15-syslog-rfc3339.log")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
