"""Writes in batches (pligt/core/batches.py): a reader's flush returns only once what was added is written."""

from __future__ import annotations

import threading

from pligt.core.batches import Batches


def test_a_flush_waits_for_the_batch_the_background_thread_is_writing() -> None:
    written: list[str] = []
    writing, release = threading.Event(), threading.Event()

    def write(batch: list[str]) -> None:
        writing.set()
        assert release.wait(10)
        written.extend(batch)

    batches: Batches[str] = Batches(write, "test items", interval=60)
    batches.add("a record")
    background = threading.Thread(target=batches.flush)  # as the background thread's timer does
    background.start()
    assert writing.wait(10)  # it took the batch and is writing it

    read = threading.Event()

    def reader() -> None:
        batches.flush()  # as Archive.harvest() does before it reads
        read.set()

    threading.Thread(target=reader).start()
    assert not read.wait(0.3)  # nothing waits in the queue, yet the record is not written
    release.set()
    assert read.wait(10)
    assert written == ["a record"]
    background.join(10)
