from tests.plugins.helpers import installed  # noqa: F401  (fixture)
