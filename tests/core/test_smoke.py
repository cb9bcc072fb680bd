def test_console_home_needs_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_console_home_for_owner(owner_client, org):
    response = owner_client.get("/console/")
    assert response.status_code == 200
    assert b"Acme" in response.content
