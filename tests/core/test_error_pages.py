def test_forbidden_page_uses_the_layout_and_says_why(viewer_client):
    response = viewer_client.post("/console/developers/api-keys/", {"name": "x"})
    assert response.status_code == 403
    assert b'class="entrance-card"' in response.content
    assert b"Admin role or higher" in response.content


def test_unknown_page_is_a_404_in_the_layout(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_rate_limited_login_page_uses_the_layout(client, db, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1/m/ip"}
    client.post("/accounts/login/", {"login": "a@b.test", "password": "x"})
    response = client.post("/accounts/login/", {"login": "a@b.test", "password": "x"})
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
