"""The background process, `python -m app.workers` (`make run` starts one beside gunicorn): every piece of
background work, each a named unit with one loop shape (app/workers/loop.py), their health in one place.

The units (app/workers/units.py): `webhook-dispatch`, the webhook dispatcher (app/notifications/dispatcher.py),
and `offer-sweep`, the expiry of offers past their time (app/booking/offers.py). A new sweep is one more
unit there: a name, one pass, its pace. Any number of these processes may run against one database: each
unit's pass is safe beside another process's (SKIP LOCKED claims, leases, the event's row lock).
"""
