"""The web layer: blueprints and the request plumbing around them."""
