from flask import url_for

from app.web.blueprint import Blueprint
from app.web.schemas import IndexSchema

blp = Blueprint("index", __name__, description="Where to start")


# A JSON answer rather than a redirect to /docs: a client that follows redirects would get an HTML
# page where it expects JSON, while a person reads the two links just as well.
@blp.route("/", methods=["GET"])
@blp.response(200, IndexSchema)
def index():
    """Where the docs are

    Links to the interactive docs page and to the OpenAPI document.
    """
    return {"docs": url_for("api-docs.openapi_swagger_ui"), "openapi": url_for("api-docs.openapi_json")}
