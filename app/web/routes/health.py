from app.booking import services
from app.database.engine import db
from app.web.blueprint import Blueprint
from app.web.schemas import HealthSchema

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz():
    """Liveness

    200 while the process answers, whatever the database does.
    """
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.problems(503)
def readyz():
    """Readiness

    200 while the database answers, else 503 `unavailable`.
    """
    services.check_database(db.engine)
    return {"status": "ok"}
