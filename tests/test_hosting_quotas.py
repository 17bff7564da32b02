"""Per-publisher quotas: bytes, versions and upload size, refused 507/507/413 with nothing stored.

A host sets them in a publisher's pligt.toml (or for all in deployment.toml's
``[settings]``); they bind that publisher alone. Uploads go through the owner's
API of a real ``pligt serve --deployment``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.data import binary_bytes
from tests.support.hosting import Hosted
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop

LIMITED, FREE = "limited.example", "free.example"
QUOTAS = {"quota_versions": 3, "quota_bytes": 5_000, "max_upload_bytes": 4_000}


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    deployment = make_deployment(tmp_path / "deployment", LIMITED, FREE)
    with (deployment.folder / "publishers" / LIMITED / "pligt.toml").open("a", encoding="utf-8") as config:
        config.write("".join(f"{key} = {value}\n" for key, value in QUOTAS.items()))
    serve(deployment, tmp_path / "serve.log")
    yield deployment
    stop(deployment)


def upload(hosted: Hosted, name: str, size: int, filename: str) -> requests.Response:
    return hosted.request(
        "POST",
        name,
        f"/api/items?filename={filename}&visibility=public",
        data=binary_bytes(size),
        auth=("owner", hosted.passwords[name]),
        headers={"Accept": "application/json"},
    )


def stored(hosted: Hosted, name: str) -> tuple[int, int, int]:
    """The publisher's versions and their bytes in its catalog, and the files in its storage."""
    archive = hosted.archive(name)
    try:
        versions = archive.versions()
    finally:
        archive.catalog.close()
    files = [p for p in (hosted.folder / "publishers" / name / "files").rglob("*") if p.is_file()]
    return len(versions), sum(v.size for v in versions), len(files)


def test_an_upload_beyond_the_byte_quota_is_refused_507_and_nothing_is_stored(hosted: Hosted) -> None:
    assert upload(hosted, LIMITED, 3_000, "one.bin").status_code == 201
    refused = upload(hosted, LIMITED, 2_500, "two.bin")  # 5,500 bytes in all
    assert refused.status_code == 507
    assert "quota of 5,000 bytes" in refused.json()["description"]
    assert stored(hosted, LIMITED) == (1, 3_000, 1)
    assert upload(hosted, LIMITED, 2_000, "three.bin").status_code == 201  # exactly up to the quota
    assert upload(hosted, LIMITED, 1, "four.bin").status_code == 507
    assert stored(hosted, LIMITED) == (2, 5_000, 2)
    # The neighbour has no quota: the same uploads go through.
    for n, size in enumerate((3_000, 2_500, 2_000, 1)):
        assert upload(hosted, FREE, size, f"f{n}.bin").status_code == 201
    assert stored(hosted, FREE) == (4, 7_501, 4)


def test_an_upload_beyond_the_version_quota_is_refused_507(hosted: Hosted) -> None:
    for n in range(3):
        assert upload(hosted, LIMITED, 100, f"v{n}.bin").status_code == 201
    refused = upload(hosted, LIMITED, 100, "v3.bin")
    assert refused.status_code == 507
    assert "quota of 3 versions" in refused.json()["description"]
    assert stored(hosted, LIMITED) == (3, 300, 3)


def test_an_upload_beyond_the_publishers_upload_size_is_refused_413(hosted: Hosted) -> None:
    assert upload(hosted, LIMITED, 4_001, "big.bin").status_code == 413
    assert stored(hosted, LIMITED) == (0, 0, 0)
    assert upload(hosted, FREE, 4_001, "big.bin").status_code == 201


def test_uploads_side_by_side_never_exceed_the_quota_together(hosted: Hosted) -> None:
    """Each fits alone, not both: one is refused, whichever comes second, and nothing of it stays."""
    answers: list[int] = []

    def send(n: int) -> None:
        answers.append(upload(hosted, LIMITED, 3_000, f"side-{n}.bin").status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 507]
    assert stored(hosted, LIMITED) == (1, 3_000, 1)
