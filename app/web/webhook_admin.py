"""The extension that holds the app's webhook `Registration` (app/notifications/service.py), made once by
create_app: what registering needs from the configuration, never rebuilt per request."""

from __future__ import annotations

from flask import Flask, current_app

from app.notifications.service import Registration


class WebhookAdmin:
    def init_app(self, app: Flask, config) -> None:
        app.extensions["webhook_registration"] = Registration(config.webhook_secret_keys, config.webhook_allow_private)

    @property
    def registration(self) -> Registration:
        return current_app.extensions["webhook_registration"]


webhook_admin = WebhookAdmin()
