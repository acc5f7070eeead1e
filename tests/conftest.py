import os
import tempfile
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


@pytest.fixture(scope="session", autouse=True)
def _temp_files_in_pytest_basetemp(tmp_path_factory):
    """Temporary files of the tests and of what they start (Beam leaves a folder per pipeline that a
    test builds without running, and per run a test kills) go under pytest's basetemp, which pytest
    prunes, instead of piling up in /tmp."""
    folder = str(tmp_path_factory.mktemp("tmp"))
    with pytest.MonkeyPatch.context() as patch:  # session-wide; restored after the last test
        patch.setenv("TMPDIR", folder)
        patch.setattr(tempfile, "tempdir", folder)
        yield
