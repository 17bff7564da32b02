"""A deployment on one PostgreSQL database (a schema per publisher) and one S3 bucket (a prefix per publisher).

The same isolation as on SQLite and local folders, attacked the same way: each
publisher's rows live in its own schema and its objects under its own prefix,
and no request for one reaches the other's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.hosting import schema_name
from pligt.links import version_path
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.hosting import Hosted
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.s3 import Bucket
from tests.test_hosting_isolation import HOST_TRICKS

ALPHA, BRAVO = "alpha.example", "bravo.example"


@pytest.fixture
def hosted(tmp_path: Path, postgres_url: str, bucket: Bucket) -> Iterator[Hosted]:
    text = (
        f'scheme = "http"\ncatalog = "{postgres_url}"\nstorage = "{bucket.url("pligt")}"\n[settings]\n'
        f's3_endpoint_url = "{bucket.endpoint}"\ns3_region = "{bucket.region}"\ns3_addressing_style = "path"\n'
    )
    deployment = make_deployment(tmp_path / "deployment", ALPHA, BRAVO, text=text)
    yield deployment
    stop(deployment)


def _publish(hosted: Hosted, name: str) -> tuple[str, str, str]:
    """A public and a protected file in ``name``; return their paths and a crawler's Authorization."""
    archive = hosted.archive(name)
    try:
        mark = name.split(".")[0]
        public = archive.publish([pdf_bytes(f"{mark}mark")], filename=f"{mark}-public.pdf", visibility=PUBLIC)
        protected = archive.publish([pdf_bytes(f"{mark}mark")], filename=f"{mark}-prot.pdf", visibility=PROTECTED)
        credential, password = issue_credential(archive)
    finally:
        archive.catalog.close()
    return version_path(public.version), version_path(protected.version), basic_header(credential, password)


def test_each_publisher_has_its_schema_and_its_prefix_and_nothing_crosses(
    hosted: Hosted, postgres_url: str, bucket: Bucket, tmp_path: Path
) -> None:
    published = {name: _publish(hosted, name) for name in (ALPHA, BRAVO)}
    with psycopg.connect(postgres_url) as conn:
        for name in (ALPHA, BRAVO):
            schema = schema_name(name)
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.versions",)).fetchone()
            assert found == (True,), schema
            count = conn.execute(f'SELECT COUNT(*) FROM "{schema}".versions').fetchone()
            assert count == (2,)
        assert conn.execute("SELECT to_regclass('public.versions')").fetchone() == (None,)
    keys = {v["Key"] for v in bucket.versions() if "VersionId" in v}
    assert keys and all(k.startswith((f"pligt/{ALPHA}/", f"pligt/{BRAVO}/")) for k in keys)
    assert sum(k.startswith(f"pligt/{ALPHA}/") for k in keys) == 2

    listed = invoke("publishers", "list", "--deployment", str(hosted.folder), "--json")
    assert [(row["name"], row["versions"]) for row in json.loads(listed.stdout)] == [(ALPHA, 2), (BRAVO, 2)]

    serve(hosted, tmp_path / "serve.log")
    # Each serves its own (first: the attempts below make this client a guesser at both).
    for name, (public, protected, crawler) in published.items():
        assert name.split(".")[0].encode() + b"mark" in hosted.get(name, public).content
        assert hosted.get(name, protected, headers={"Authorization": crawler}).status_code == 200
    attempts = crossings = 0
    for victim, neighbour in ((ALPHA, BRAVO), (BRAVO, ALPHA)):
        public, protected, crawler = published[victim]
        mark = victim.split(".")[0].encode() + b"mark"
        # Its crawler credential opens nothing at the neighbour.
        n_protected = published[neighbour][1]
        for path in (n_protected, "/protected/", protected):
            attempts += 1
            crossings += hosted.get(neighbour, path, headers={"Authorization": crawler}).status_code == 200
        # Requests that name the victim while addressed to the neighbour.
        for trick, lines in HOST_TRICKS.items():
            for path in (public, protected):
                values = {"v": victim, "n": neighbour, "path": path, "v_upper": victim.upper()}
                values |= {"v_pct": victim.replace(".", "%2e"), "v_pct_all": victim.encode().hex()}
                head = "\r\n".join([*(line.format(**values) for line in lines), f"Authorization: {crawler}"])
                answer = hosted.raw((head + "\r\nConnection: close\r\n\r\n").encode("latin-1"))
                attempts += 1
                if mark in answer.partition(b"\r\n\r\n")[2]:
                    crossings += 1
                    print("crossed:", trick, path)
    assert attempts >= 90
    assert crossings == 0


def test_a_removed_publisher_takes_its_schema_along(hosted: Hosted, postgres_url: str) -> None:
    hosted.add("empty.example")
    schema = schema_name("empty.example")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.versions",)).fetchone() == (True,)
    removed = invoke("publishers", "remove", "--deployment", str(hosted.folder), "empty.example")
    assert removed.exit_code == 0, removed.output
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.versions",)).fetchone() == (None,)
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema_name(ALPHA)}.versions",)).fetchone() == (
            True,
        )


def test_the_publishers_of_one_bucket_share_one_s3_client(bucket: Bucket) -> None:
    """A client per publisher cost 12 MiB and 0.2 s each: a worker holding fifty would not keep the crawler's pace."""
    alpha, bravo = bucket.storage(f"pligt/{ALPHA}"), bucket.storage(f"pligt/{BRAVO}")
    assert alpha.client is bravo.client
    assert bucket.storage(f"pligt/{ALPHA}", read_timeout=3).client is not alpha.client  # other options: its own
