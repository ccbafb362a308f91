"""The replica router's rules, in process: what may ever go to a replica."""

from django.contrib.auth import get_user_model

from chat.models import Message
from chatproject.replicas import ReplicaRouter, read_alias
from tasks.models import Task


def test_writes_and_migrations_use_the_primary_only():
    router = ReplicaRouter()
    token = read_alias.set("replica_0")
    try:
        assert router.db_for_write(Task) == "default"
        assert router.allow_migrate("default", "tasks") is True
        assert router.allow_migrate("replica_0", "tasks") is False
    finally:
        read_alias.reset(token)


def test_reads_follow_the_request_but_users_stay_on_the_primary():
    router = ReplicaRouter()
    assert router.db_for_read(Message) == "default"  # no request chose a replica
    token = read_alias.set("replica_0")
    try:
        assert router.db_for_read(Message) == "replica_0"
        assert router.db_for_read(get_user_model()) == "default"
    finally:
        read_alias.reset(token)
