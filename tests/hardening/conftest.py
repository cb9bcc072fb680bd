import pytest


@pytest.fixture(autouse=True)
def _classification_rules(request):
    """Tests that touch the database get the classifier's default rules back (a transactional test may have flushed them)."""
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        request.getfixturevalue("default_rules")
