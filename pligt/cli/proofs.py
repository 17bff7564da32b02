"""``pligt proof`` and ``pligt verify-proof``: a receipt of a version's publication and deposit, and its check.

``verify-proof`` needs no instance: it runs :mod:`pligt.core.proof.receipt_check`, the
module that stands alone for those who check receipts without Pligt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.core.errors import InvalidInput
from pligt.core.errors import InvalidProof
from pligt.core.proof.receipt_check import Unreadable
from pligt.core.proof.receipt_check import check_receipt
from pligt.core.proof.receipts import make_receipt
from pligt.instance import open_instance


@click.command()
@instance_option
@click.argument("slug")
@click.option("--version", "number", type=int, required=True, help="The version's number.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the receipt here (default: SLUG-vN.receipt.json; - for stdout).",
)
def proof(instance: Path | None, slug: str, number: int, output: Path | None) -> None:
    """Write the receipt of version N of SLUG: publication, retention, digests, the crawler's fetches, proven.

    Anyone checks it offline with `pligt verify-proof FILE` (or pligt/core/proof/receipt_check.py alone).
    """
    _, archive = open_instance(instance)
    receipt = make_receipt(archive, slug, number)
    text = json.dumps(receipt, indent=1, ensure_ascii=False) + "\n"
    if output is not None and str(output) == "-":
        sys.stdout.write(text)
        return
    target = output or Path(f"{slug}-v{number}.receipt.json")
    try:
        with target.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise InvalidInput(f"{target} exists: a receipt is never written over another") from None
    stamped = "time-stamped" if receipt["checkpoint"]["stamp"] else "NOT time-stamped yet (no TSA answer)"
    click.echo(f"wrote {target}: {len(receipt['entries'])} proven entries, checkpoint {stamped}")


@click.command("verify-proof")
@click.argument("receipt", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--key", help="The public key the publisher published (default: the receipt's own).")
@click.option(
    "--tsa-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The PEM certificate of the TSA's CA you trust (default: the receipt's).",
)
@click.option(
    "--file",
    "held",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The file you hold: compared with the version's SHA-256 and SHA-1.",
)
def verify_proof(receipt: Path, key: str | None, tsa_ca: Path | None, held: Path | None) -> None:
    """Check a receipt offline, without the instance: one line per fact, holding or not."""
    try:
        data = json.loads(receipt.read_text(encoding="utf-8"))
        found = check_receipt(data, key=key, tsa_ca_pem=tsa_ca.read_text("ascii") if tsa_ca else None, file=held)
    except (ValueError, Unreadable) as e:
        raise InvalidInput(f"cannot check {receipt}: {e}") from e
    click.echo(found.text(), nl=False)
    if not found.ok:
        raise InvalidProof(f"{receipt}: {sum(not h for h, _ in found.lines)} of the facts above do not hold")


COMMANDS = (proof, verify_proof)
