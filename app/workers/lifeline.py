"""The launcher's lifeline: `make run` (app/operations/serve.py) hands its children the read end of a pipe
whose write end only it holds, in this variable; when the launcher exits, however it died, the pipe
closes and each child stops by itself."""

LIFELINE_FD_VARIABLE = "BOOKING_LAUNCHER_LIFELINE_FD"
