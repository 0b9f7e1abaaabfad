"""`llada-serve`: an OpenAI-compatible HTTP server for LLaDA models, with batching, streaming and a demo page.

Needs the `serve` extra (`pip install "llada-hf[serve]"`: FastAPI and uvicorn). `create_app` builds the ASGI app;
`llada.cli.serve` is the command.
"""

from .app import create_app
from .protocol import APIError

__all__ = ["APIError", "create_app"]
