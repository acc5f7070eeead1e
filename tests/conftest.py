import os
from pathlib import Path

import pytest

# session fixtures (text shards, a small vocabulary, token shards) shared by the data and trainer tests
pytest_plugins = ["tokens_testdata"]

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo with shared/ beside it; C4CLEAN_SHARED_DATA overrides.
SHARED_DATA = Path(os.environ.get("C4CLEAN_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_WET = REPO / "sample_data" / "wet"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set C4CLEAN_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_wet() -> Path:
    return SAMPLE_WET
