"""Documentation pages and the scripts that generate parts of them (a package only so that
pytest imports docs/conftest.py as ``docs.conftest``, distinct from tests/conftest.py)."""
