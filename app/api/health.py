from app import services
from app.api import Blueprint
from app.extensions import db
from app.schemas import HealthSchema

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.problems(503)
def readyz():
    """Readiness: the database answers; 503 `unavailable` otherwise."""
    services.check_database(db.engine)
    return {"status": "ok"}
