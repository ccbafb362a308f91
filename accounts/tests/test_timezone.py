"""auth/me/'s `timezone`: UTC by default, set by PATCH to an IANA name, checked."""

import pytest

from accounts.models import Profile
from core.timezones import user_timezone
from testing.api import READ_BUDGET

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me/"


def test_timezone_is_utc_by_default(api_client, user):
    response = api_client.get(ME)

    assert response.status_code == 200
    assert response.json()["timezone"] == "UTC"
    assert not Profile.objects.exists()


def test_patch_sets_the_timezone_and_get_shows_it(api_client, user):
    response = api_client.patch(ME, {"timezone": "America/New_York"})

    assert response.status_code == 200
    assert response.json()["timezone"] == "America/New_York"
    assert api_client.get(ME).json()["timezone"] == "America/New_York"
    user.refresh_from_db()
    assert str(user_timezone(user)) == "America/New_York"


def test_patch_again_changes_the_one_profile(api_client, user):
    api_client.patch(ME, {"timezone": "Asia/Tokyo"})
    api_client.patch(ME, {"timezone": "Europe/Paris"})

    assert list(Profile.objects.values_list("timezone", flat=True)) == ["Europe/Paris"]


def test_patch_email_keeps_the_timezone(api_client, user):
    api_client.patch(ME, {"timezone": "Asia/Tokyo"})

    response = api_client.patch(ME, {"email": "new@example.com"})

    assert response.status_code == 200
    assert response.json()["email"] == "new@example.com"
    assert response.json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    "value",
    ["Mars/Olympus", "", "utc ", "../../etc/passwd", "Etc/../UTC", 5, None, ["UTC"]],
)
def test_bad_timezone_is_400_naming_it_and_changes_nothing(api_client, user, value):
    response = api_client.patch(ME, {"timezone": value}, format="json")

    assert response.status_code == 400
    assert "timezone" in response.json()
    assert api_client.get(ME).json()["timezone"] == "UTC"


def test_bad_email_is_400(api_client):
    response = api_client.patch(ME, {"email": "not an address"})

    assert response.status_code == 400
    assert "email" in response.json()


def test_another_users_timezone_is_theirs(api_client, user, other_user):
    Profile.objects.create(user=other_user, timezone="Asia/Tokyo")

    assert api_client.get(ME).json()["timezone"] == "UTC"


def test_deleting_the_account_deletes_its_profile(api_client, user):
    api_client.patch(ME, {"timezone": "Asia/Tokyo"})

    assert api_client.delete(ME).status_code == 204
    assert not Profile.objects.exists()


def test_me_is_read_within_the_read_budget(api_client, user, django_assert_max_num_queries):
    api_client.patch(ME, {"timezone": "Asia/Tokyo"})
    with django_assert_max_num_queries(READ_BUDGET):
        assert api_client.get(ME).status_code == 200
