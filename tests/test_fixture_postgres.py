from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
import psycopg
def test_pg(postgres_url):
    with psycopg.connect(postgres_url.replace("+psycopg","")) as c:
        assert c.execute("select 1+1").fetchone()[0] == 2
