"""HTTP blueprints: parse with a schema, call one service function, render."""

from flask_smorest import Blueprint as SmorestBlueprint

from app.extensions import ContractParser


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ContractParser()
