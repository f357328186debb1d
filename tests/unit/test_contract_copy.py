"""CONTRACT.md in the repository is a verbatim copy of the team's shared contract."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "CONTRACT.md"


def test_the_copy_names_every_section_users_rely_on():
    text = (ROOT / "CONTRACT.md").read_text(encoding="utf-8")
    for heading in ("## 1. The orders file", "## 2. Landing", "## 3. The warehouse (dbt)",
                    "## 4. The HTTP API", "## 5. Commands", "## 6. The order stream (real time)"):  # fmt: skip  # noqa: E501
        assert heading in text


@pytest.mark.skipif(not SHARED.exists(), reason="the shared contract is not beside this clone")
def test_the_copy_matches_the_shared_contract_byte_for_byte():
    assert (ROOT / "CONTRACT.md").read_bytes() == SHARED.read_bytes()
