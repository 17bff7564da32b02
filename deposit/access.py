"""How the deposit institution gets access to protected material."""

from __future__ import annotations

from flask import Blueprint
from flask import render_template

bp = Blueprint("access", __name__, url_prefix="/access")


@bp.get("/")
def index() -> str:
    return render_template("access.html")
