"""The README's first command keeps working: the local run ends consistent, with no DLQ."""

from __future__ import annotations

import subprocess
import sys

from tests.harness.emf import emitted
from tests.harness.world import ROOT
from tests.integration.test_dashboard import HAPPY_PATH, OURS, SERVICE


def test_local_run_ends_with_imgix_matching_s3():
    done = subprocess.run(
        [sys.executable, "-m", "localdev.run_local", "--verbose"],  # metrics on
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "OK: every object under the prefix is indexed" in out
    assert "DLQ messages: 0" in out
    assert "/assets/add/%2E%2E/escape.jpg" in out
    assert "/assets/refresh/hero.jpg" in out
    assert out.count("/assets/add/burst.jpg") == 1
    assert "upload-session executions: ['SUCCEEDED']" in out
    assert "/upload/photos/small.jpg" in out
    shoe = out.split("its custom field s3_sku")[1].split("==")[0]
    assert "/assets/add/shoe.jpg" in shoe and "PATCH /api/v1/sources/" in shoe
    changed = out.split("its field patched, no refresh")[1].split("==")[0]
    assert "PATCH" in changed and "refresh" not in changed
    tagged = out.split("its field s3_season patched, no refresh")[1].split("==")[0]
    assert "PATCH" in tagged and "refresh" not in tagged  # moto's own tag notification
    # The Asset Manager's listing at the end.
    assert "{'s3_sku': 'SHOE-2', 's3_season': 'summer'}" in out

    # The dashboard's happy-path metrics, as it names them (test_dashboard.py).
    names = {
        name
        for namespace, name, dimensions in emitted(out)
        if (namespace, dimensions) == (OURS, SERVICE)
    }
    assert HAPPY_PATH - names == set()
