"""Signed, time-stamped checkpoints of the audit log, and what they let anyone check.

The audit entries are the leaves of a Merkle tree (:mod:`pligt.core.proof.merkle`);
after every change that matters, and at least daily, the instance signs a
checkpoint of it (:mod:`pligt.core.proof.notes`) and has it time-stamped by a TSA
(:mod:`pligt.core.proof.timestamps`). A checkpoint is published and kept with each
receipt, so that whoever rewrites or cuts the log afterwards (even with write
access to the catalog) is caught: the signed roots no longer match, and a
time-stamped checkpoint shows how many entries the log had by then.

Nothing here stands in a publication's or a download's way: a checkpoint is
written after the change's transaction, a failure to sign or stamp is logged
and reported by ``pligt check``, and stamping runs in the background.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from pligt.core.catalog import Catalog
from pligt.core.errors import ArchiveError
from pligt.core.errors import AuditBroken
from pligt.core.errors import InvalidProof
from pligt.core.models import StoredCheckpoint
from pligt.core.proof.audit import AuditEntry
from pligt.core.proof.audit import leaf_bytes
from pligt.core.proof.merkle import consistency_proof
from pligt.core.proof.merkle import leaf_hash
from pligt.core.proof.merkle import prefix_roots
from pligt.core.proof.merkle import root as tree_root
from pligt.core.proof.merkle import verify_consistency
from pligt.core.proof.notes import Checkpoint
from pligt.core.proof.notes import Signer
from pligt.core.proof.notes import Verifier
from pligt.core.proof.notes import parse_checkpoint
from pligt.core.proof.notes import parse_verifier
from pligt.core.proof.timestamps import TIMEOUT
from pligt.core.proof.timestamps import check_stamp
from pligt.core.proof.timestamps import request_stamp

log = logging.getLogger(__name__)

#: Seconds the web app's checkpoint waits after a change, so that a burst of changes shares one.
BACKGROUND_DELAY = 1.0
#: Seconds between a server's attempts to have checkpoints stamped while the TSA does not answer.
RETRY_SECONDS = 300.0
#: A checkpoint is made at least this often, even when nothing changed (``pligt audit stamp``).
DAILY = timedelta(days=1)
#: The audit entry that gives the log a new name and key (``pligt audit rename``); it names
#: the key it retires, so that the checkpoints signed before stay verifiable.
RENAMED = "log.renamed"


def leaves(entries: Sequence[AuditEntry]) -> list[bytes]:
    """Return the Merkle leaf hashes of the audit entries, in order."""
    return [leaf_hash(leaf_bytes(e)) for e in entries]


@dataclass(frozen=True)
class CheckpointStatus:
    """How an instance's checkpoints stand; :meth:`problems` says what to do about it."""

    keyed: bool
    count: int
    unstamped: int
    last_error: str | None
    newest_at: datetime | None
    uncovered: int

    def problems(self, now: datetime) -> list[str]:
        found = []
        if self.unstamped:
            why = f" (last error: {self.last_error})" if self.last_error else ""
            found.append(f"{self.unstamped} checkpoints are not time-stamped yet{why}: run `pligt audit stamp`")
        if self.uncovered > 0:
            found.append(f"the newest {self.uncovered} audit entries are in no checkpoint: run `pligt audit stamp`")
        if self.newest_at is not None and now - self.newest_at > DAILY + timedelta(hours=1):
            found.append(f"the newest checkpoint is from {self.newest_at:%Y-%m-%d %H:%M}: run `pligt audit stamp`")
        return found


class Checkpoints:
    """The checkpoints of one instance's audit log: written, stamped and checked."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Callable[[], datetime],
        signer: Signer | None = None,
        *,
        tsa_url: str = "",
        tsa_roots_pem: str = "",
        tsa_timeout: float = TIMEOUT,
        latest_file: Path | None = None,
    ) -> None:
        """
        :param signer: the instance's key; None: no checkpoints (an archive opened without an instance).
        :param tsa_url: the RFC 3161 TSA to stamp with; empty: none.
        :param tsa_roots_pem: the CA certificate(s) the TSA chains to (PEM).
        :param latest_file: where a copy of the newest checkpoint is kept outside the catalog,
            so that one who cuts both entries and checkpoints from the catalog is caught too.
        """
        self.catalog = catalog
        self.clock = clock
        self.signer = signer
        self.tsa_url = tsa_url
        self.tsa_roots_pem = tsa_roots_pem
        self.tsa_timeout = tsa_timeout
        self.latest_file = latest_file
        #: Write checkpoints in a thread of their own (the web app: no request waits for one),
        #: ``delay`` seconds after a change, so that the changes of those seconds share one.
        self.background = False
        self.delay = 0.0
        self._stamping = threading.Lock()
        self._queue = threading.Lock()
        self._pending = False
        self._worker: threading.Thread | None = None
        self._hurry = threading.Event()
        #: Seconds between the web app's attempts to stamp what a TSA that was down left unstamped.
        self.retry_seconds = RETRY_SECONDS
        self._retrying: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._cache_lock = threading.Lock()
        self._leaves: list[bytes] = []  # of the entries read so far (see _leaves_now)
        self._last_hash = ""

    # -- writing -----------------------------------------------------------------

    def write(self, *, new: bool = False) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint of the log as it is now, unless the newest one already is.

        :param new: sign a new one even so (the daily checkpoint: a fresh time stamp).
        :return: the newest checkpoint; None without a key.
        """
        if self.signer is None:
            return None
        with self.catalog.transaction():  # the entries and the checkpoint of them, under one lock
            hashes = self._leaves_now()
            newest = next(iter(self.catalog.checkpoints(newest_first=True, limit=1)), None)
            if newest is not None and newest.size == len(hashes) and not new:
                return newest
            root = tree_root(hashes)
            note = self.signer.sign(Checkpoint(self.signer.name, len(hashes), root).text())
            checkpoint = self.catalog.add_checkpoint(len(hashes), root.hex(), note, self.clock())
        self._keep_copy(checkpoint)
        return checkpoint

    def _leaves_now(self) -> list[bytes]:
        """Return the leaf hashes of the whole log, reading only the entries this process has not read yet.

        The log is append-only: what was read before is kept, and the first new
        entry must link to the last one kept (else everything is read again).
        """
        with self._cache_lock:
            new = list(self.catalog.audit_entries_after(len(self._leaves)))
            if new and self._leaves and new[0].prev_hash != self._last_hash:
                self._leaves, self._last_hash = [], ""
                new = list(self.catalog.audit_entries())
            if new:
                self._leaves += leaves(new)
                self._last_hash = new[-1].hash
            return list(self._leaves)

    def _keep_copy(self, checkpoint: StoredCheckpoint) -> None:
        if self.latest_file is None:
            return
        # A name of its own per process and thread: the server and a command may write at once.
        partial = self.latest_file.with_name(f"{self.latest_file.name}.{os.getpid()}.{threading.get_ident()}.partial")
        partial.write_text(checkpoint.note, encoding="utf-8")
        os.replace(partial, self.latest_file)

    def after_change(self) -> None:
        """Checkpoint a change that matters (called once its transaction is committed), and have it stamped.

        Signing waits for nothing but the catalog; stamping runs in a thread of its
        own. With :attr:`background` (the web app) the checkpoint is written in that
        thread too, so that a request never waits for the log to be read. A failure
        is logged, never raised: the change itself has happened.
        """
        if self.signer is None:
            return
        if self.background:
            self._schedule()
            return
        if self._write_quietly():
            self._start(self._stamp_quietly)

    def _write_quietly(self) -> bool:
        """Write the checkpoint; tell whether one waits for a stamp."""
        try:
            checkpoint = self.write()
        except (ArchiveError, OSError) as e:
            log.warning("no checkpoint after the change (pligt check reports it): %s", e)
            return False
        return checkpoint is not None and checkpoint.stamp is None and bool(self.tsa_url)

    def _schedule(self) -> None:
        """Have the background worker checkpoint the log (starting it if it is not running)."""
        with self._queue:
            self._pending = True
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="pligt-checkpoint")
                self._threads = [t for t in self._threads if t.is_alive()] + [self._worker]
                self._worker.start()

    def _work(self) -> None:
        """Write (and stamp) checkpoints while changes come, :attr:`delay` after each burst of them.

        The delay lets a burst of changes (a batch of uploads) share one checkpoint,
        instead of each one waiting for the previous one's commit.
        """
        try:
            while True:
                self._hurry.wait(self.delay)  # :meth:`wait` cuts it short
                with self._queue:
                    if not self._pending:
                        self._worker = None
                        return
                    self._pending = False
                try:
                    if self._write_quietly() and any(error for _, error in self.stamp_pending()):
                        self._retry_later()
                except Exception:  # a thread's failure is told, never its end: the change happened
                    log.exception("checkpointing or stamping failed (pligt check reports it)")
        finally:
            self.catalog.close()  # this thread's connection

    def _retry_later(self) -> None:
        """Have the TSA asked again every :attr:`retry_seconds` until it has stamped every checkpoint."""
        with self._queue:
            if self._retrying is None:
                # A daemon: a server that stops does not wait for a TSA that is down (cron stamps later).
                self._retrying = threading.Thread(target=self._retry, name="pligt-stamp-retry", daemon=True)
                self._retrying.start()

    def _retry(self) -> None:
        try:
            while True:
                time.sleep(self.retry_seconds)
                if not any(error for _, error in self.stamp_pending()):
                    return
        except Exception:  # a thread's failure is told, never its end
            log.exception("stamping checkpoints failed (pligt check reports it)")
        finally:
            with self._queue:
                self._retrying = None
            self.catalog.close()  # this thread's connection

    def _start(self, work: Callable[[], None]) -> None:
        # Not a daemon: a CLI command waits (at most the TSA's timeout) for its stamp before it exits.
        thread = threading.Thread(target=work, name="pligt-checkpoint")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self) -> None:
        """Finish the checkpointing and stamping started in the background now (no burst delay), if any."""
        self._hurry.set()
        try:
            while self._threads:
                self._threads.pop().join()
        finally:
            self._hurry.clear()

    def _stamp_quietly(self) -> None:
        try:
            self.stamp_pending()
        except Exception:  # a thread's failure is told, never its end
            log.exception("stamping checkpoints failed (pligt check reports it)")
        finally:
            self.catalog.close()  # this thread's connection

    # -- stamping ----------------------------------------------------------------

    def stamp_pending(self) -> list[tuple[StoredCheckpoint, str | None]]:
        """Ask the TSA to stamp every checkpoint without a stamp; return each with the error, if any.

        Stops at the first failure (a TSA that is down is down for all of them).
        """
        if not self.tsa_url:
            return []
        done: list[tuple[StoredCheckpoint, str | None]] = []
        with self._stamping:  # one stamping run at a time in a process
            for checkpoint in self.catalog.checkpoints(unstamped=True):
                try:
                    stamp = request_stamp(self.tsa_url, checkpoint.note.encode(), self.tsa_roots_pem, self.tsa_timeout)
                except ArchiveError as e:
                    self.catalog.set_stamp_error(checkpoint.id, e.message)
                    done.append((checkpoint, e.message))
                    break
                self.catalog.set_stamp(checkpoint.id, stamp.reply, stamp.chain_pem, stamp.at)
                done.append((checkpoint, None))
        return done

    def daily(self) -> StoredCheckpoint | None:
        """Write a new checkpoint if the newest is a day old (so that one is stamped every day)."""
        newest = self.newest()
        if newest is not None and self.clock() - newest.created_at < DAILY:
            return newest
        return self.write(new=True)

    def newest(self, *, stamped: bool = False) -> StoredCheckpoint | None:
        """Return the newest checkpoint (``stamped``: the newest with a time stamp)."""
        if not stamped:
            return next(iter(self.catalog.checkpoints(newest_first=True, limit=1)), None)
        return next((c for c in self.catalog.checkpoints(newest_first=True) if c.stamp is not None), None)

    def status(self) -> CheckpointStatus:
        """Say how the checkpoints stand (for ``pligt check``): how many, unstamped, how old."""
        kept = self.catalog.checkpoints()
        unstamped = [c for c in kept if c.stamp is None]
        newest = kept[-1] if kept else None
        entries = next(self.catalog.audit_entries(newest_first=True, limit=1), None)
        return CheckpointStatus(
            keyed=self.signer is not None,
            count=len(kept),
            unstamped=len(unstamped) if self.tsa_url else 0,
            last_error=next((c.stamp_error for c in reversed(unstamped) if c.stamp_error), None),
            newest_at=newest.created_at if newest else None,
            uncovered=(entries.seq if entries else 0) - (newest.size if newest else 0),
        )

    # -- checking ----------------------------------------------------------------

    def verify(self, entries: Sequence[AuditEntry]) -> str:
        """Check every kept checkpoint against the log; return a line saying what holds.

        Each checkpoint's signature (by this instance's key) and time stamp must
        verify, and its root must be the root of the log's first ``size``
        entries: a consistency proof from the newest time-stamped checkpoint to
        the log as it is must hold. An entry changed or removed after a
        checkpoint, or the newest entries cut off, fail this even when the hash
        chain was recomputed to hide it.

        :raises AuditBroken: naming the checkpoint and the entries that no longer match.
        """
        if self.signer is None:
            return "no checkpoint key: checkpoints not checked"
        verifier = parse_verifier(self.signer.verifier_key)  # the published form, as a third party reads it
        # Checkpoints signed before a rename name the log as it was then, and its key.
        verifiers = {v.name: v for v in _retired_verifiers(entries)} | {verifier.name: verifier}
        kept = self.catalog.checkpoints()
        copy = self._read_copy()
        hashes = leaves(entries)
        roots = prefix_roots(hashes, [c.size for c in kept] + ([copy.size] if copy else []))
        previous_size = 0
        for expected_id, stored in enumerate(kept, start=1):
            if stored.id != expected_id:
                raise AuditBroken(None, f"checkpoint {expected_id} is missing (found checkpoint {stored.id} after it)")
            label = f"checkpoint {stored.id} (of {stored.size} entries, signed {stored.created_at:%Y-%m-%d %H:%M:%S})"
            signer = verifiers.get(stored.note.split("\n", 1)[0], verifier)
            said = self._check_signed(stored, signer, label)
            _check_prefix(label, said.size, said.root, len(entries), roots, previous_size)
            previous_size = said.size
        if copy is not None:
            _check_prefix(
                f"the copy of the newest checkpoint kept in {self.latest_file}",
                copy.size,
                copy.root,
                len(entries),
                roots,
                previous_size,
            )
        stamped = next((c for c in reversed(kept) if c.stamp is not None), None)
        if stamped is not None:
            _check_consistency(stamped, hashes)
        unstamped = sum(c.stamp is None for c in kept)
        waiting = f"{unstamped} not time-stamped yet" if self.tsa_url else "no tsa_url: not time-stamped"
        return (
            f"{len(kept)} checkpoints verify ({waiting})"
            + (f", the newest time-stamped covers {stamped.size} entries" if stamped else "")
            if kept
            else "no checkpoint yet"
        )

    def _check_signed(self, stored: StoredCheckpoint, verifier: Verifier, label: str) -> Checkpoint:
        """Return what a kept checkpoint signed, once its signature, its stored copy and its time stamp agree.

        :raises AuditBroken: naming the checkpoint (``label``) and what fails.
        """
        try:
            said = parse_checkpoint(verifier.verify(stored.note))
        except InvalidProof as e:
            raise AuditBroken(None, f"{label}: {e.message}") from e
        if said.origin != verifier.name or said.size != stored.size or said.root.hex() != stored.root:
            raise AuditBroken(None, f"{label}: its stored size or root differs from what it signed")
        if stored.stamp is not None:
            try:
                check_stamp(stored.stamp, stored.note.encode(), stored.stamp_chain or "", roots_pem=self.tsa_roots_pem)
            except InvalidProof as e:
                raise AuditBroken(None, f"{label}: {e.message}") from e
        return said

    def _read_copy(self) -> Checkpoint | None:
        if self.latest_file is None or self.signer is None or not self.latest_file.is_file():
            return None
        try:
            return parse_checkpoint(
                parse_verifier(self.signer.verifier_key).verify(self.latest_file.read_text("utf-8"))
            )
        except (InvalidProof, OSError, UnicodeError) as e:
            raise AuditBroken(
                None, f"the copy of the newest checkpoint in {self.latest_file} does not verify: {e}"
            ) from e


def _check_consistency(stamped: StoredCheckpoint, hashes: list[bytes]) -> None:
    """Check the proof a third party holding the newest time-stamped checkpoint would ask for.

    :raises AuditBroken: when the log as it is does not extend what that checkpoint signed.
    """
    proof = consistency_proof(hashes, stamped.size)
    try:
        verify_consistency(stamped.size, len(hashes), bytes.fromhex(stamped.root), tree_root(hashes), proof)
    except InvalidProof as e:
        raise AuditBroken(None, f"consistency with time-stamped checkpoint {stamped.id} fails: {e.message}") from e


def _retired_verifiers(entries: Sequence[AuditEntry]) -> list[Verifier]:
    """Return the keys that renames retired, as the (verified) audit log names them.

    :raises AuditBroken: when a rename entry does not name a verifier key.
    """
    found = []
    for entry in entries:
        if entry.action == RENAMED:
            try:
                found.append(parse_verifier(str(entry.data.get("retired_key", ""))))
            except InvalidProof as e:
                raise AuditBroken(entry.seq, f"the rename names no key it retired: {e.message}") from e
    return found


def rename_refusal(current: str, wanted: str, credentials_issued: int) -> str | None:
    """Say why the log may not be renamed from ``current`` to ``wanted`` now; None if it may.

    Its name is in every checkpoint and receipt. Before any credential was
    issued the deposit institution holds none of them, and the name may still
    change; after, it stays what the institution was given.
    """
    if current == wanted:
        return f"the checkpoint key and the audit log are already named {wanted}"
    if credentials_issued:
        return (
            f"the audit log keeps its name {current}: credentials were issued under it, and the deposit "
            "institution may hold checkpoints or receipts that name it"
        )
    return None


def _check_prefix(
    label: str, size: int, root: bytes, entries: int, roots: dict[int, bytes], previous_size: int
) -> None:
    """Raise unless the log still has the ``size`` entries a checkpoint signed, unchanged."""
    if size > entries:
        cut = f"entry {entries + 1} was" if size == entries + 1 else f"entries {entries + 1}-{size} were"
        raise AuditBroken(None, f"{label} covers {size} entries, the log has {entries}: {cut} cut off")
    if roots[size] != root:
        changed = f"entry {size} was" if previous_size + 1 == size else f"entries {previous_size + 1}-{size} were"
        raise AuditBroken(
            None,
            f"{label}: the log's first {size} entries are not those it signed: {changed} changed, "
            "removed or inserted since (the chain was rewritten to hide it)",
        )
