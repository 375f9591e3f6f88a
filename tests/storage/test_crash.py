"""kill -9 at random moments loses no acknowledged commit and shows no partial one."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from helios.storage.store import Store
from storage_helpers import rows_of

TRIALS = int(os.environ.get("HELIOS_CRASH_TRIALS", "20"))
CHILD = Path(__file__).with_name("crash_child.py")


def _run_child(db_path: Path, start: int, kill_after: float) -> list[int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)   # the same helios the tests import
    proc = subprocess.Popen([sys.executable, str(CHILD), str(db_path), str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    return [int(line) for line in out.split()]


def test_kill_minus_nine_loses_no_acknowledged_commit(tmp_path):
    rng = random.Random(int(os.environ.get("HELIOS_CRASH_SEED", "1234")))
    db_path = tmp_path / "db"
    acked: set[int] = set()
    start = 1
    for trial in range(TRIALS):
        acked.update(_run_child(db_path, start, rng.uniform(0.02, 0.25)))
        db = Store(db_path)
        rows = rows_of(db, "t")
        db.close(checkpoint=rng.random() < 0.3)
        present = {k for k in rows if k > 0}
        lost = acked - present
        assert not lost, f"trial {trial}: acknowledged commits lost: {sorted(lost)[:10]}"
        partial = {k for k in present if -k not in rows} | {-k for k in rows if k < 0 and -k not in rows}
        assert not partial, f"trial {trial}: partial transactions visible: {sorted(partial)[:10]}"
        start = max(present | acked | {start}) + 1
    assert len(acked) > TRIALS            # the children really committed
