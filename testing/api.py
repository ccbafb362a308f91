"""Helpers the apps' API tests share: raw posts, JSON error checks, page walks, budgets."""

# Queries per request, authentication included: a read, a write.
READ_BUDGET = 3
WRITE_BUDGET = 6
# Deleting an account clears twelve tables (the user's rows in each, its profile, its
# turns' events, and Django's own: groups, permissions, admin log, tokens); what
# matters is that the count does not grow with the data.
ACCOUNT_DELETE_BUDGET = 19


def post_raw(client, url, body, content_type="application/json"):
    return client.generic("POST", url, body, content_type=content_type)


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and body, body


def walk(client, url):
    """Follow `next` links; return the pages' ids."""
    pages = []
    while url:
        body = client.get(url).json()
        pages.append([item["id"] for item in body["results"]])
        url = body["next"]
    return pages
