from sqlalchemy import inspect


def test_migrated_database_has_the_seven_tables(session):
    names = set(inspect(session.get_bind()).get_table_names())
    assert {"users", "servers", "playbooks", "jobs", "job_logs", "tickets", "audit_logs"} <= names


def test_redis_answers(redis_server):
    import redis

    assert redis.Redis.from_url(redis_server.url).ping()
